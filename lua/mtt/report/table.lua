-- mtt.report.table: rows of results as a markdown table and as CSV (RFC 4180 quoting). Rows are
-- tables keyed by column name (or arrays in column order); columns is an array of names (or
-- nil: the sorted union of the rows' keys). Markdown rounds numbers for reading; CSV keeps
-- every digit (the shortest %.Ng that reads back as the same double).
local U = require 'mtt.util'

local T = {}

local function check_rows(fname, rows, columns)
  if type(rows) ~= 'table' then U.raise(fname .. ': rows must be an array of tables, got ' .. type(rows)) end
  for i, r in ipairs(rows) do
    if type(r) ~= 'table' then U.raise(string.format('%s: rows[%d] must be a table, got %s', fname, i, type(r))) end
  end
  if columns == nil then
    local seen, cols = {}, {}
    for _, r in ipairs(rows) do
      for k in pairs(r) do
        if type(k) == 'string' and not seen[k] then seen[k] = true; cols[#cols + 1] = k end
      end
    end
    table.sort(cols)
    return cols
  end
  if type(columns) ~= 'table' or #columns == 0 then
    U.raise(fname .. ': columns must be a non-empty array of names, got ' .. type(columns))
  end
  for i, c in ipairs(columns) do
    if type(c) ~= 'string' then U.raise(string.format('%s: columns[%d] must be a string, got %s', fname, i, type(c))) end
  end
  return columns
end

local function cell(r, j, c)
  local v = r[c]
  if v == nil then v = r[j] end
  return v
end

-- Shortest decimal text that reads back as the same double ('' for nil; nan/inf as words).
function T.number_text(v)
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' elseif v == -math.huge then return '-inf' end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format('%d', v) end
  for digits = 15, 17 do
    local s = string.format('%.' .. digits .. 'g', v)
    if tonumber(s) == v then return s end
  end
  return string.format('%.17g', v)
end

-- Short text for reading: integers as such, others with 4 significant digits.
local function plain(v) -- a table cell as JSON text (never an address)
  return require('mtt.train.metrics').encode(v)
end

function T.short_text(v)
  if type(v) == 'table' then return plain(v) end
  if type(v) ~= 'number' then return v == nil and '' or tostring(v) end
  if v ~= v then return 'nan' end
  if v == math.floor(v) and math.abs(v) < 1e15 then return string.format('%d', v) end
  local s = string.format('%.4g', v)
  return s
end

local function md_escape(s) return (s:gsub('|', '\\|'):gsub('\n', ' ')) end

-- Markdown table text (numbers right-aligned).
function T.markdown(rows, columns)
  local cols = check_rows('mtt.report.table', rows, columns)
  local lines = { '| ' .. table.concat((function()
    local h = {}
    for i, c in ipairs(cols) do h[i] = md_escape(c) end
    return h
  end)(), ' | ') .. ' |' }
  local align = {}
  for j, c in ipairs(cols) do
    local numeric = #rows > 0
    for _, r in ipairs(rows) do
      local v = cell(r, j, c)
      if v ~= nil and type(v) ~= 'number' then numeric = false end
    end
    align[j] = numeric and '---:' or '---'
  end
  lines[2] = '| ' .. table.concat(align, ' | ') .. ' |'
  for _, r in ipairs(rows) do
    local cells = {}
    for j, c in ipairs(cols) do cells[j] = md_escape(T.short_text(cell(r, j, c))) end
    lines[#lines + 1] = '| ' .. table.concat(cells, ' | ') .. ' |'
  end
  return table.concat(lines, '\n') .. '\n'
end

local function csv_field(v)
  local s
  if v == nil then s = ''
  elseif type(v) == 'number' then s = T.number_text(v)
  elseif type(v) == 'table' then s = plain(v)
  else s = tostring(v) end
  if s:find('[,"\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

-- CSV text: a header line, then one line per row.
function T.csv(rows, columns)
  local cols = check_rows('mtt.report.csv', rows, columns)
  local out = {}
  local h = {}
  for i, c in ipairs(cols) do h[i] = csv_field(c) end
  out[1] = table.concat(h, ',')
  for _, r in ipairs(rows) do
    local cells = {}
    for j, c in ipairs(cols) do cells[j] = csv_field(cell(r, j, c)) end
    out[#out + 1] = table.concat(cells, ',')
  end
  return table.concat(out, '\n') .. '\n'
end

-- Writes the CSV of rows to path; returns path.
function T.write_csv(path, rows, columns)
  local text = T.csv(rows, columns)
  local f, err = io.open(path, 'wb')
  if not f then U.raise('mtt.report.write_csv: cannot write ' .. tostring(path) .. ': ' .. tostring(err)) end
  f:write(text); f:close()
  return path
end

return T
