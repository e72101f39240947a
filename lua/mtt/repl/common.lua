-- mtt.repl.common: what the command families share: number formatting, aligned text tables,
-- finding a run folder from a name, and completing file paths.
local io_ = require 'mtt.io'
local U = require 'mtt.util'

local M = {}

-- A number in at most ~8 characters: integers whole, others with 4 significant digits.
function M.num(v)
  if type(v) ~= 'number' then return v == nil and '-' or tostring(v) end
  if v ~= v then return 'nan' end
  if v == math.floor(v) and math.abs(v) < 1e9 then return string.format('%d', v) end
  return (string.format('%.4g', v))
end

-- rows: arrays of cells (converted with tostring); cols: header names. align: per column 'l'
-- or 'r' (default: 'r' when every cell of the column is a number, else 'l').
function M.table(cols, rows, align)
  local width, numeric = {}, {}
  for j, c in ipairs(cols) do width[j], numeric[j] = #c, true end
  local text = {}
  for i, r in ipairs(rows) do
    text[i] = {}
    for j = 1, #cols do
      local v = r[j]
      if type(v) ~= 'number' and v ~= nil then numeric[j] = false end
      local s = type(v) == 'number' and M.num(v) or (v == nil and '-' or tostring(v))
      text[i][j] = s
      width[j] = math.max(width[j], #s)
    end
  end
  local function line(cells)
    local parts = {}
    for j = 1, #cols do
      local a = (align and align[j]) or (numeric[j] and 'r' or 'l')
      local fmt = a == 'r' and ('%' .. width[j] .. 's') or ('%-' .. width[j] .. 's')
      parts[j] = string.format(fmt, cells[j])
    end
    return (table.concat(parts, '  '):gsub('%s+$', ''))
  end
  local out = { line(cols) }
  local rule = {}
  for j = 1, #cols do rule[j] = string.rep('-', width[j]) end
  out[#out + 1] = table.concat(rule, '  ')
  for i = 1, #rows do out[#out + 1] = line(text[i]) end
  return table.concat(out, '\n')
end

function M.is_dir(path)
  local st = io_.stat(path)
  return st ~= nil and st.is_dir
end

function M.exists(path) return io_.stat(path) ~= nil end

function M.runs_root()
  if M.is_dir('runs') then return 'runs' end
  local mtt_root = require('mtt.ffi').root
  if mtt_root and M.is_dir(mtt_root .. '/runs') then return mtt_root .. '/runs' end
  return 'runs'
end

-- A path as typed, or a name under runs/ (runs/NAME, then MTT_ROOT/runs/NAME).
function M.find_path(name, what)
  if type(name) ~= 'string' or name == '' then U.raise('mtt.repl: ' .. what .. ': give a run folder or path') end
  name = name:gsub('/+$', '')
  if name == '' then name = '/' end
  local tried = { name }
  if M.exists(name) then return name end
  local root = M.runs_root()
  local under = root .. '/' .. name
  tried[#tried + 1] = under
  if M.exists(under) then return under end
  U.raise(string.format("mtt.repl: %s: '%s' not found (tried %s)", what, name, table.concat(tried, ', ')))
end

function M.dirname(path)
  local d = path:match('^(.*)/[^/]*$')
  if d == nil then return '.' end
  if d == '' then return '/' end
  return d
end

function M.basename(path) return path:match('([^/]*)$') end

-- Paths completing `arg` (folders end in '/'); with runs = true also the names of run
-- folders under runs/. filter(name, is_dir) may drop files.
function M.complete_path(arg, opts)
  opts = opts or {}
  local out = {}
  local dir, base = arg:match('^(.*/)([^/]*)$')
  local list_dir = dir and (dir == '/' and '/' or dir:sub(1, -2)) or '.'
  base = base or arg
  local ok, names = pcall(io_.listdir, list_dir)
  if ok then
    for _, n in ipairs(names) do
      if n:sub(1, #base) == base and (n:sub(1, 1) ~= '.' or base:sub(1, 1) == '.') then
        local full = (dir or '') .. n
        local d = M.is_dir(full)
        if not opts.filter or opts.filter(n, d) then out[#out + 1] = full .. (d and '/' or '') end
      end
    end
  end
  if opts.runs and not dir then
    local root = M.runs_root()
    local ok2, runs = pcall(io_.listdir, root)
    if ok2 and root ~= '.' then
      for _, n in ipairs(runs) do
        if n:sub(1, #arg) == arg and M.is_dir(root .. '/' .. n) and not M.is_dir(n) then out[#out + 1] = n end
      end
    end
  end
  return out
end

-- Text cut to n characters (with an ellipsis), newlines shown as \n.
function M.short(s, n)
  s = tostring(s):gsub('\n', '\\n')
  if #s > n then return s:sub(1, n - 3) .. '...' end
  return s
end

-- Text wrapped at `width` columns with `indent` before each line, at most max_lines lines.
function M.wrap(s, width, indent, max_lines)
  indent = indent or ''
  local lines = {}
  for para in (tostring(s) .. '\n'):gmatch('(.-)\n') do
    local line = ''
    for word in para:gmatch('%S+') do
      if #line > 0 and #line + 1 + #word > width - #indent then
        lines[#lines + 1] = indent .. line
        line = word
      else
        line = #line > 0 and line .. ' ' .. word or word
      end
    end
    lines[#lines + 1] = indent .. line
  end
  if max_lines and #lines > max_lines then
    local n = #lines
    for i = n, max_lines + 1, -1 do lines[i] = nil end
    lines[#lines + 1] = string.format('%s... (%d more lines)', indent, n - max_lines)
  end
  return table.concat(lines, '\n')
end

return M
