-- mtt.report: results as a folder a reader opens: report.md (verdicts first, then sections,
-- tables and plots), a CSV behind every table and plot, each plot as SVG (our own writer,
-- lua/mtt/report/svg.lua) and PNG (rsvg-convert, when installed), and report.json, which holds
-- everything needed to render the folder again (`mtt report RUN`).
--
--   local r = mtt.report.new('runs/x/report', {title = 'Transfer'})
--   r:section('Transfer vs n'); r:text('...')
--   r:table{name = 'transfer', rows = rows, columns = {'task', 'n', 'value'}}
--   r:plot{kind = 'line', name = 'transfer_n', title = ..., xlabel = ..., ylabel = ...,
--          series = {{label = 'base', x = ns, y = m, lo = lo, hi = hi}, ...}}
--   r:verdict{claim = 'ICL predicts transfer', holds = true, statistic = 'r = 0.71, p = 0.003 (n = 12)'}
--   r:write()  --> {md =, json =, verdicts = {lines}}
local U = require 'mtt.util'
local options = require 'mtt.options'
local SVG = require 'mtt.report.svg'
local T = require 'mtt.report.table'
local J = require 'mtt.train.metrics' -- canonical JSON (sorted keys, 17 digits), atomic writes

local R = {}
R.svg = SVG
R.markdown = T.markdown
R.csv = T.csv
R.write_csv = T.write_csv

-- mtt.report.table(rows, columns) -> markdown text.
function R.table(rows, columns) return T.markdown(rows, columns) end

local function finite(v) return type(v) == 'number' and v == v and v ~= math.huge and v ~= -math.huge end
local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function write_text(fname, path, text)
  require('mtt.sandbox').check_write(path, fname)
  local ok, err = J.write_file(path, text)
  if not ok then U.raise(string.format('%s: cannot write %s: %s', fname, path, tostring(err))) end
  return path
end

local function makedirs(dir) require('mtt.io').makedirs(dir) end

-- PNG conversion ----------------------------------------------------------------------------

local rsvg_state -- nil: not looked for yet; false: missing; string: the command
-- The rsvg-convert command, or nil and why not. MTT_NO_PNG=1 turns PNGs off.
function R.png_tool()
  if os.getenv('MTT_NO_PNG') == '1' then return nil, 'PNG output is off (MTT_NO_PNG=1)' end
  if rsvg_state == nil then
    local ok = os.execute('command -v rsvg-convert >/dev/null 2>&1')
    rsvg_state = (ok == 0 or ok == true) and 'rsvg-convert' or false
  end
  if not rsvg_state then return nil, 'rsvg-convert not found (Debian package librsvg2-bin): SVG only' end
  return rsvg_state
end

-- Converts an SVG file to PNG; returns the PNG path, or nil and why.
function R.png(svg_path, png_path)
  png_path = png_path or svg_path:gsub('%.svg$', '') .. '.png'
  local tool, why = R.png_tool()
  if not tool then return nil, why end
  require('mtt.sandbox').check_write(png_path, 'mtt.report.png')
  local ok = os.execute(string.format('%s -f png -o %s %s 2>/dev/null', tool, shq(png_path), shq(svg_path)))
  if not (ok == 0 or ok == true) then return nil, 'rsvg-convert failed on ' .. svg_path end
  return png_path
end

-- Plots ------------------------------------------------------------------------------------

local PLOT_OPTS = 'kind:string name:string title:string xlabel:string ylabel:string x:table y:table ' ..
  'lo:table hi:table label:string series:table categories:table xlog:boolean fit:boolean ' ..
  'stat:string width:number height:number dir:string logx:boolean groups:table'

local function slug(s) return (tostring(s):lower():gsub('[^%w]+', '_'):gsub('^_+', ''):gsub('_+$', '')) end

-- A copy of plain data, so that later changes to the caller's tables cannot make report.json
-- differ from what was drawn (-0 becomes 0: JSON would write it as 0).
local function copy(v, depth)
  if type(v) == 'number' and v == 0 then return 0 end
  if type(v) ~= 'table' then return v end
  if (depth or 0) > 16 then U.raise('mtt.report: data nested deeper than 16 (a cycle?)') end
  local c = {}
  for k, x in pairs(v) do c[k] = copy(x, (depth or 0) + 1) end
  return c
end

-- The spec as stored in report.json (shorthand x/y -> one series; dir dropped).
local function normalize_plot(spec)
  options.check('mtt.report.plot', spec, PLOT_OPTS)
  local s = {}
  for k, v in pairs(spec) do if k ~= 'dir' then s[k] = copy(v) end end
  if s.series == nil and s.y ~= nil then
    s.series = { { label = s.label, x = s.x or {}, y = s.y, lo = s.lo, hi = s.hi } }
  end
  -- bar charts may come as groups = {{label =, values = {one per category}, lo =, hi =}}
  if s.groups ~= nil then
    if s.series ~= nil then U.raise('mtt.report.plot: give series or groups, not both') end
    if type(s.categories) ~= 'table' then U.raise('mtt.report.plot: groups need categories (the x of each value)') end
    s.series = {}
    for i, g in ipairs(s.groups) do
      if type(g) ~= 'table' or type(g.values) ~= 'table' then
        U.raise(string.format('mtt.report.plot: groups[%d] needs values (one per category)', i))
      end
      local xs = {}
      for j = 1, #g.values do xs[j] = s.categories[j] end
      s.series[i] = { label = g.label, x = xs, y = g.values, lo = g.lo, hi = g.hi, color = g.color }
    end
  end
  if s.logx ~= nil then s.xlog = s.xlog or s.logx end -- another spelling
  for _, se in ipairs(type(s.series) == 'table' and s.series or {}) do
    if type(se) == 'table' and se.names ~= nil and se.labels == nil then se.labels, se.names = se.names, nil end
  end
  s.x, s.y, s.lo, s.hi, s.label, s.groups, s.logx = nil, nil, nil, nil, nil, nil, nil
  s.name = s.name or (s.title and slug(s.title)) or nil
  if not s.name or s.name == '' then U.raise('mtt.report.plot: give a name (the file stem) or a title') end
  if s.name:find('[^%w_%.%-]') then U.raise("mtt.report.plot: name '" .. s.name .. "' may hold only letters, digits, _ . -") end
  return s
end

-- Rows of the CSV behind a plot: one per point.
local function plot_rows(s)
  local rows, has_err, has_lab = {}, false, false
  for _, se in ipairs(s.series) do
    if se.lo or se.hi then has_err = true end
    if se.labels then has_lab = true end
    for i = 1, #se.y do
      rows[#rows + 1] = { series = se.label or '', x = se.x[i], y = se.y[i],
        lo = se.lo and se.lo[i], hi = se.hi and se.hi[i], label = se.labels and se.labels[i] }
    end
  end
  local cols = { 'series', s.kind == 'bar' and 'category' or 'x', 'y' }
  if s.kind == 'bar' then for _, r in ipairs(rows) do r.category = r.x end end
  if has_err then cols[#cols + 1] = 'lo'; cols[#cols + 1] = 'hi' end
  if has_lab then cols[#cols + 1] = 'label' end
  return rows, cols
end

-- r, p, n of a single-series scatter (the title shows them).
local function scatter_stat(s)
  if s.kind ~= 'scatter' or #s.series ~= 1 or s.fit == false then return nil end
  local xs, ys = {}, {}
  local se = s.series[1]
  for i = 1, #se.y do
    local x = se.x[i]
    if s.xlog and finite(x) then x = x > 0 and math.log10(x) or nil end
    if finite(x) and finite(se.y[i]) then xs[#xs + 1] = x; ys[#ys + 1] = se.y[i] end
  end
  if #xs < 3 then return nil end
  local r, p = require('mtt.stats').pearson(xs, ys)
  return { r = r, p = p, n = #xs }
end

function R.format_r(st) -- 'r = 0.71, p = 0.003 (n = 12)'
  local function g(v) return v ~= v and 'nan' or string.format(math.abs(v) < 1e-3 and v ~= 0 and '%.2g' or '%.3g', v) end
  return string.format('r = %s, p = %s (n = %d)', string.format('%.2f', st.r), g(st.p), st.n)
end

-- Renders a normalized spec into dir: name.svg, name.csv, name.png (if it can).
local function render_plot(dir, s)
  local st = scatter_stat(s)
  local shown = s
  local suffix = s.stat or (st and R.format_r(st))
  if suffix and suffix ~= '' then
    shown = setmetatable({ title = (s.title and (s.title .. ': ') or '') .. suffix }, { __index = s })
  end
  local text = SVG.render(shown)
  local base = dir .. '/' .. s.name
  write_text('mtt.report.plot', base .. '.svg', text)
  local rows, cols = plot_rows(s)
  write_text('mtt.report.plot', base .. '.csv', T.csv(rows, cols))
  local png, why = R.png(base .. '.svg', base .. '.png')
  return { svg = base .. '.svg', csv = base .. '.csv', png = png, png_missing = why, stat = st,
    title = shown.title, name = s.name }
end

-- mtt.report.plot{kind =, name =, dir = '.', ...}: writes dir/name.svg, .csv and .png.
function R.plot(spec)
  local s = normalize_plot(spec)
  local dir = spec.dir or '.'
  makedirs(dir)
  return render_plot(dir, s)
end

-- Reports ------------------------------------------------------------------------------------

local Report = {}
Report.__index = Report

-- mtt.report.new(dir[, {title =}]): an empty report writing into dir.
function R.new(dir, opts)
  if type(dir) ~= 'string' or dir == '' then U.raise('mtt.report.new: dir must be a folder path, got ' .. type(dir)) end
  local o = options.check('mtt.report.new', opts, 'title:string')
  makedirs(dir)
  return setmetatable({ dir = dir, title = o.title or 'Report', items = {}, verdicts = {}, names = {},
    png_missing = nil }, Report)
end

local function claim_name(self, fname, name)
  if self.names[name] then U.raise(string.format("%s: name '%s' is used twice in this report", fname, name)) end
  self.names[name] = true
end

function Report:section(title)
  if type(title) ~= 'string' then U.raise('report:section: title must be a string, got ' .. type(title)) end
  self.items[#self.items + 1] = { type = 'section', title = title }
  return self
end

function Report:text(s)
  if type(s) ~= 'string' then U.raise('report:text: expected a string, got ' .. type(s)) end
  self.items[#self.items + 1] = { type = 'text', text = s }
  return self
end

-- r:table{rows =, columns =, name =, title =}: markdown in report.md, name.csv beside it.
-- Returns the markdown.
function Report:table(t)
  local o = options.check('report:table', t, 'rows:table columns:table name:string title:string')
  if o.rows == nil then U.raise('report:table: rows are missing') end
  local name = o.name or ('table_' .. (#self.items + 1))
  if name:find('[^%w_%.%-]') then U.raise("report:table: name '" .. name .. "' may hold only letters, digits, _ . -") end
  claim_name(self, 'report:table', name)
  local rows, columns = copy(o.rows), copy(o.columns)
  local md = T.markdown(rows, columns)
  write_text('report:table', self.dir .. '/' .. name .. '.csv', T.csv(rows, columns))
  self.items[#self.items + 1] = { type = 'table', rows = rows, columns = columns, name = name, title = o.title }
  return md
end

-- r:plot{kind =, name =, title =, xlabel =, ylabel =, series = {...} | x =, y =, lo =, hi =}:
-- renders now (svg, csv, png) and embeds it in report.md. Returns the files and, for a
-- one-series scatter, stat = {r, p, n}.
function Report:plot(spec)
  local s = normalize_plot(spec)
  claim_name(self, 'report:plot', s.name)
  local out = render_plot(self.dir, s)
  if out.png_missing then self.png_missing = out.png_missing end
  self.items[#self.items + 1] = { type = 'plot', spec = s }
  out.spec = s
  return out
end

local VERDICT_WORD = { [true] = 'HOLDS', [false] = 'DOES NOT HOLD' }

-- r:verdict{claim =, holds = true | false | nil, statistic =}: a line at the top of report.md
-- (and among the returned verdicts); returns it, e.g. 'HOLDS: claim (r = 0.71, p = 0.003 (n = 12))'.
function Report:verdict(v)
  local o = options.check('report:verdict', v, 'claim:string holds:boolean statistic:string')
  if not o.claim then U.raise('report:verdict: claim is missing') end
  local line = (VERDICT_WORD[o.holds] or 'INCONCLUSIVE') .. ': ' .. o.claim ..
    (o.statistic and (' (' .. o.statistic .. ')') or '')
  self.verdicts[#self.verdicts + 1] = { claim = o.claim, holds = o.holds, statistic = o.statistic, line = line }
  return line
end

-- The report as markdown text.
function Report:markdown()
  local out = { '# ' .. self.title, '' }
  if #self.verdicts > 0 then
    out[#out + 1] = '## Verdicts'
    out[#out + 1] = ''
    for _, v in ipairs(self.verdicts) do
      out[#out + 1] = string.format('- **%s**: %s%s', VERDICT_WORD[v.holds] or 'INCONCLUSIVE', v.claim,
        v.statistic and (' (' .. v.statistic .. ')') or '')
    end
    out[#out + 1] = ''
  end
  if self.png_missing then
    out[#out + 1] = '> Plots are embedded as SVG: ' .. self.png_missing .. '.'
    out[#out + 1] = ''
  end
  for _, it in ipairs(self.items) do
    if it.type == 'section' then
      out[#out + 1] = '## ' .. it.title; out[#out + 1] = ''
    elseif it.type == 'text' then
      out[#out + 1] = it.text; out[#out + 1] = ''
    elseif it.type == 'table' then
      if it.title then out[#out + 1] = '**' .. it.title .. '**'; out[#out + 1] = '' end
      out[#out + 1] = T.markdown(it.rows, it.columns)
      out[#out + 1] = string.format('*Data: [%s.csv](%s.csv)*', it.name, it.name)
      out[#out + 1] = ''
    elseif it.type == 'plot' then
      local s = it.spec
      local img = self.png_missing and (s.name .. '.svg') or (s.name .. '.png')
      out[#out + 1] = string.format('![%s](%s)', (s.title or s.name):gsub('[%[%]]', ''), img)
      out[#out + 1] = ''
      out[#out + 1] = string.format('*%s: [SVG](%s.svg), [data](%s.csv)*', s.name, s.name, s.name)
      out[#out + 1] = ''
    end
  end
  return table.concat(out, '\n')
end

-- Writes report.md and report.json; returns {md =, json =, verdicts = {lines}}.
function Report:write()
  local md = write_text('report:write', self.dir .. '/report.md', self:markdown())
  local doc = { format = 'mtt.report/1', title = self.title, items = self.items, source = self.source }
  local vs = {}
  for i, v in ipairs(self.verdicts) do vs[i] = { claim = v.claim, holds = v.holds, statistic = v.statistic } end
  doc.verdicts = vs
  local json = write_text('report:write', self.dir .. '/report.json', J.encode(doc, ' ') .. '\n')
  local lines = {}
  for i, v in ipairs(self.verdicts) do lines[i] = v.line end
  return { md = md, json = json, verdicts = lines, dir = self.dir }
end

-- Re-rendering ---------------------------------------------------------------------------------

-- JSON null (NaN/inf written by the encoder) back to NaN; arrays stay arrays.
local function unnull(v, null)
  if v == null then return 0 / 0 end
  if type(v) == 'table' then
    for k, x in pairs(v) do v[k] = unnull(x, null) end
  end
  return v
end

-- Reads a report.json and renders it into dir (default: its own folder).
function R.render(json_path, dir)
  local f, err = io.open(json_path, 'rb')
  if not f then U.raise('mtt.report.render: cannot read ' .. tostring(json_path) .. ': ' .. tostring(err)) end
  local text = f:read('*a'); f:close()
  local cjson = require('cjson').new()
  local ok, doc = pcall(cjson.decode, text)
  if not ok or type(doc) ~= 'table' or doc.format ~= 'mtt.report/1' then
    U.raise('mtt.report.render: ' .. json_path .. ' is not an mtt report.json (format mtt.report/1)')
  end
  doc = unnull(doc, cjson.null)
  dir = dir or json_path:match('^(.*)/[^/]*$') or '.'
  local r = R.new(dir, { title = doc.title })
  r.source = doc.source
  for i, it in ipairs(doc.items or {}) do
    if it.type == 'section' then r:section(it.title)
    elseif it.type == 'text' then r:text(it.text)
    elseif it.type == 'table' then r:table{ rows = it.rows, columns = it.columns, name = it.name, title = it.title }
    elseif it.type == 'plot' then r:plot(it.spec)
    else U.raise(string.format("mtt.report.render: %s: item %d has unknown type '%s'", json_path, i, tostring(it.type))) end
  end
  for _, v in ipairs(doc.verdicts or {}) do
    if v.holds ~= v.holds then v.holds = nil end
    r:verdict{ claim = v.claim, holds = v.holds, statistic = v.statistic }
  end
  return r:write()
end

local function exists(path) return require('mtt.io').stat(path) ~= nil end

-- mtt.report.build(run_dir): RUN/report/ rendered again from RUN/report/report.json (also when
-- run_dir is the report folder itself); a run without one (or with one generated from its
-- metrics) gets the generic report from RUN/metrics.jsonl. Returns what r:write() returns.
function R.build(run_dir)
  if type(run_dir) ~= 'string' then U.raise('mtt.report.build: run_dir must be a path, got ' .. type(run_dir)) end
  run_dir = run_dir:gsub('/+$', '')
  if run_dir == '' then run_dir = '/' end
  local candidates = { run_dir .. '/report/report.json', run_dir .. '/report.json' }
  for _, p in ipairs(candidates) do
    if exists(p) then
      local f = io.open(p, 'rb'); local text = f and f:read('*a') or ''; if f then f:close() end
      local generated = text:find('"source": *"metrics.jsonl"') ~= nil
      if not generated then return R.render(p) end
    end
  end
  if exists(run_dir .. '/metrics.jsonl') then
    return require('mtt.report.generic').build(run_dir, R)
  end
  U.raise('mtt.report.build: ' .. run_dir .. ' has neither report/report.json nor metrics.jsonl')
end

-- `mtt report RUN_DIR...` (tools/mtt/main.c): builds each and prints where the report is.
function R.main(...)
  local dirs = { ... }
  if #dirs == 0 or dirs[1] == '--help' or dirs[1] == '-h' then
    io.write('usage: mtt report RUN_DIR...   render RUN_DIR/report/ again from report.json,\n',
      '                               or build a report from RUN_DIR/metrics.jsonl\n')
    if #dirs == 0 then error('mtt report: give a run folder', 0) end
    return
  end
  for _, d in ipairs(dirs) do
    local out = R.build(d)
    print('report: ' .. out.md)
    for _, l in ipairs(out.verdicts) do print('  ' .. l) end
    local _, why = R.png_tool()
    if why then print('  note: ' .. why) end
  end
end

return R
