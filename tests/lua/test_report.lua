-- test_report.lua: mtt.report. A report with every plot kind (line with error bars and legend,
-- scatter with least-squares fit and r/p in the title, grouped bars with error bars), a table,
-- text and verdicts is written; the SVGs are parsed as XML by Python's xml.etree and must hold
-- their title, axis labels and legend labels; PNGs must be PNGs of the SVG's size (magic bytes
-- and IHDR); CSVs hold the plotted numbers; then `mtt report RUN` (this binary) renders the
-- folder again from report.json and every file must come out byte-identical. A run with only
-- a metrics.jsonl gets the generic report (numbers checked by hand). Without rsvg-convert
-- (MTT_NO_PNG=1 stands in) the report says so and embeds SVGs.
local mtt = require 'mtt'
local rep = mtt.report
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')

local checker = testlib.checker('test_report', { stop = true })
local check, expect_error = checker.check, checker.expect_error
local read, write, sh = testlib.read, testlib.write, testlib.sh
-- runs a command: success (exit status 0) and its output (stdout and stderr)
local function cmd_out(cmd)
  local f = os.tmpname()
  local ok = sh(cmd .. ' > ' .. f .. ' 2>&1')
  local out = read(f) or ''
  os.remove(f)
  return ok, out
end

local MTT = testlib.mtt_binary()
local tmp = testlib.tmpdir()
local have_png = rep.png_tool() ~= nil
print('rsvg-convert: ' .. (have_png and 'found' or 'missing (SVG only)'))

-- 1. A report with every kind --------------------------------------------------------------
local run = tmp .. '/run1'
local r = rep.new(run .. '/report', { title = 'Test report' })
r:section('Transfer by number of examples')
r:text('Fine-tuned score against n, base vs tuned.')
local nan = 0 / 0
local line = r:plot{ kind = 'line', name = 'transfer_n', title = 'Transfer vs n', xlabel = 'fine-tuning examples n',
  ylabel = 'ROUGE-L (0-1)', xlog = true, series = {
    { label = 'base (id)', x = { 5, 10, 20, 40 }, y = { 0.1, 0.2, 0.25, 0.4 }, lo = { 0.05, 0.15, 0.2, 0.3 }, hi = { 0.15, 0.25, 0.3, 0.5 } },
    { label = 'tuned (exemplars)', x = { 5, 10, 20, 40 }, y = { 0.3, nan, 0.45, 0.6 }, lo = { 0.2, nan, nan, 0.5 }, hi = { 0.4, nan, nan, 0.7 }, dashed = true },
  } }
local xs, ys, names = { 1, 2, 3, 4, 5, 6 }, { 1.2, 1.9, 3.4, 3.9, 5.3, 5.8 }, { 'ta', 'tb', 'tc', 'td', 'te', 'tf' }
local sc = r:plot{ kind = 'scatter', name = 'transfer_icl', title = 'Transfer vs ICL', xlabel = 'ICL loss (nats/token)',
  ylabel = 'transfer gap (ROUGE-L)', series = { { label = 'tasks', x = xs, y = ys, labels = names } } }
local bar = r:plot{ kind = 'bar', name = 'sampling', title = 'Task sampling', xlabel = 'method', ylabel = 'loss (nats/token)',
  categories = { 'uniform', 'proportional', 'temperature' }, series = {
    { label = 'seen train', x = { 'uniform', 'proportional', 'temperature' }, y = { 2.1, 2.0, 1.9 }, lo = { 2.0, 1.9, 1.8 }, hi = { 2.2, 2.1, 2.0 } },
    { label = 'held-out ICL', x = { 'proportional', 'uniform', 'temperature' }, y = { 3.3, 3.1, -0.5 } },
  } }
local md_table = r:table{ name = 'pinned', title = 'A pinned table', columns = { 'task', 'n', 'value' },
  rows = { { task = 'a|b', n = 5, value = 0.123456 }, { task = 'c', n = 10, value = 2 / 3 } } }
-- by hand: numbers right-aligned (n and value are all numbers), 4 significant digits, '|' escaped
check(md_table == '| task | n | value |\n| --- | ---: | ---: |\n| a\\|b | 5 | 0.1235 |\n| c | 10 | 0.6667 |\n',
  'markdown table text:\n' .. md_table)
local v1 = r:verdict{ claim = 'ICL predicts transfer', holds = true, statistic = 'r = 0.99, p = 1e-04 (n = 6)' }
local v2 = r:verdict{ claim = 'uniform beats proportional', holds = false, statistic = 'diff = -0.1' }
local v3 = r:verdict{ claim = 'replay helps' }
check(v1 == 'HOLDS: ICL predicts transfer (r = 0.99, p = 1e-04 (n = 6))', 'verdict line: ' .. v1)
check(v2:sub(1, 14) == 'DOES NOT HOLD:' and v3 == 'INCONCLUSIVE: replay helps', 'verdict words')
local out = r:write()
check(#out.verdicts == 3 and out.verdicts[1] == v1, 'write returns the verdicts')

-- scatter statistic: r, p as mtt.stats computes them (tested against scipy in test_stats)
local pr, pp = mtt.stats.pearson(xs, ys)
check(sc.stat and math.abs(sc.stat.r - pr) < 1e-15 and sc.stat.p == pp and sc.stat.n == 6, 'scatter stat')
check(sc.title == 'Transfer vs ICL: ' .. rep.format_r(sc.stat), 'scatter title carries r and p: ' .. sc.title)
check(rep.format_r({ r = 0.7071, p = 0.00312, n = 12 }) == 'r = 0.71, p = 0.00312 (n = 12)', 'format_r')

local files = { 'report.md', 'report.json', 'pinned.csv' }
for _, n in ipairs({ 'transfer_n', 'transfer_icl', 'sampling' }) do
  files[#files + 1] = n .. '.svg'; files[#files + 1] = n .. '.csv'
  if have_png then files[#files + 1] = n .. '.png' end
end
local before = {}
for _, f in ipairs(files) do
  before[f] = read(run .. '/report/' .. f)
  check(before[f] and #before[f] > 0, 'missing or empty: ' .. f)
end

-- report.md: title, verdicts before the first section, the table, the images and links
local md = before['report.md']
local vpos, spos = md:find('## Verdicts', 1, true), md:find('## Transfer by number', 1, true)
check(md:sub(1, 14) == '# Test report\n' and vpos and spos and vpos < spos, 'verdicts at the top of report.md')
check(md:find('- **HOLDS**: ICL predicts transfer (r = 0.99, p = 1e-04 (n = 6))', 1, true), 'verdict in md')
check(md:find(md_table, 1, true), 'table in md')
check(md:find(have_png and '](transfer_n.png)' or '](transfer_n.svg)', 1, true), 'plot embedded in md')
check(md:find('[data](sampling.csv)', 1, true), 'csv linked in md')

-- CSV behind the line plot: one row per point, nan as 'nan', every digit kept
local csv = before['transfer_n.csv']
check(csv:find('^series,x,y,lo,hi\n'), 'csv header: ' .. csv:sub(1, 40))
check(csv:find('\nbase %(id%),5,0.1,0.05,0.15\n'), 'csv row base 5')
check(csv:find('\ntuned %(exemplars%),10,nan,nan,nan\n'), 'csv row with a missing point')
check(select(2, csv:gsub('\n', '')) == 9, 'csv has 8 points + header')
check(before['sampling.csv']:find('^series,category,y,lo,hi\nseen train,uniform,2.1,2,2.2\n'), 'bar csv')
check(before['transfer_icl.csv']:find('\ntasks,3,3.4,tc\n', 1, true), 'scatter csv with labels')

-- SVG: well-formed XML with the labels (Python's xml.etree is the parser)
local py = tmp .. '/svgcheck.py'
write(py, [[
import sys, xml.etree.ElementTree as ET
for path in sys.argv[1:]:
    root = ET.parse(path).getroot()
    assert root.tag == '{http://www.w3.org/2000/svg}svg', root.tag
    texts = [''.join(t.itertext()) for t in root.iter('{http://www.w3.org/2000/svg}text')]
    print(path.rsplit('/', 1)[-1] + '\t' + root.get('width') + '\t' + root.get('height') + '\t' + '\x1f'.join(texts))
]])
local svgs = {}
for _, n in ipairs({ 'transfer_n', 'transfer_icl', 'sampling' }) do svgs[#svgs + 1] = run .. '/report/' .. n .. '.svg' end
local p = io.popen('/usr/bin/python3 ' .. py .. ' ' .. table.concat(svgs, ' ') .. ' 2>&1')
local parsed = {}
for l in p:lines() do
  local name, w, h, texts = l:match('^([^\t]+)\t(%d+)\t(%d+)\t(.*)$')
  check(name, 'xml.etree failed: ' .. l)
  local set = {}
  for t in (texts .. '\31'):gmatch('([^\31]*)\31') do set[t] = true end
  parsed[name] = { w = tonumber(w), h = tonumber(h), texts = set }
end
p:close()
local want = {
  ['transfer_n.svg'] = { 'Transfer vs n', 'fine-tuning examples n', 'ROUGE-L (0-1)', 'base (id)', 'tuned (exemplars)', '5', '10', '20', '40' },
  ['transfer_icl.svg'] = { sc.title, 'ICL loss (nats/token)', 'transfer gap (ROUGE-L)', 'ta', 'tf' },
  ['sampling.svg'] = { 'Task sampling', 'method', 'loss (nats/token)', 'seen train', 'held-out ICL', 'uniform', 'proportional', 'temperature', '0' },
}
for name, labels in pairs(want) do
  check(parsed[name], 'svg not parsed: ' .. name)
  for _, lab in ipairs(labels) do check(parsed[name].texts[lab], string.format("%s lacks the text '%s'", name, lab)) end
end
-- bars: the negative bar goes below the zero line, so y ticks run below 0
check(parsed['sampling.svg'].texts['-1'] or parsed['sampling.svg'].texts['-0.5'], 'bar axis covers the negative value')
-- tuned: y = .3, nan, .45, .6 with lo/hi only at points 1 and 4: 3 markers, 2 error bars of
-- 3 lines each (bar + 2 caps), and the line broken at the gap: [1] alone is not drawn, [3, 4] is
local svg_line = before['transfer_n.svg']
local g2 = svg_line:match('<g class="series" id="series%-2">(.-)</g>')
check(g2 and select(2, g2:gsub('<circle', '')) == 3 and select(2, g2:gsub('<line', '')) == 6 and select(2, g2:gsub('<polyline', '')) == 1,
  'tuned series: 3 markers, 2 error bars, one polyline')

-- scatter: 6 markers, 6 point labels and the least-squares line (dashed) from x = 1 to x = 6,
-- whose end points lie on y = a + b x (a, b by mtt.stats.linear_fit)
local g1 = before['transfer_icl.svg']:match('<g class="series" id="series%-1">(.-)</g>')
check(g1 and select(2, g1:gsub('<circle', '')) == 6 and select(2, g1:gsub('<text', '')) == 6, 'scatter markers and labels')
local fx1, fy1, fx2, fy2 = g1:match('<line x1="([%d.]+)" y1="([%d.]+)" x2="([%d.]+)" y2="([%d.]+)"[^>]*stroke%-dasharray="5 3"')
check(fx1, 'scatter has its fit line')
local fa, fb = mtt.stats.linear_fit(xs, ys)
-- the y scale from the markers of x = 1 (y 1.2) and x = 6 (y 5.8); the fit's ends in pixels
local cys = {}
for cx, cy in g1:gmatch('<circle cx="([%d.]+)" cy="([%d.]+)"') do cys[#cys + 1] = { tonumber(cx), tonumber(cy) } end
local yscale = (cys[6][2] - cys[1][2]) / (ys[6] - ys[1])
local want1 = cys[1][2] + yscale * ((fa + fb * 1) - ys[1])
local want2 = cys[1][2] + yscale * ((fa + fb * 6) - ys[1])
check(math.abs(fx1 - cys[1][1]) < 0.01 and math.abs(fx2 - cys[6][1]) < 0.01 and math.abs(fy1 - want1) < 0.02
  and math.abs(fy2 - want2) < 0.02, string.format('fit line ends (%s,%s)-(%s,%s), expected y %.2f and %.2f', fx1, fy1, fx2, fy2, want1, want2))

-- PNG: magic bytes and IHDR size = the SVG's
if have_png then
  for _, n in ipairs({ 'transfer_n', 'transfer_icl', 'sampling' }) do
    local png = before[n .. '.png']
    check(png:sub(1, 8) == '\137PNG\r\n\26\n' and png:sub(13, 16) == 'IHDR', n .. '.png is not a PNG')
    local function u32(s, i) local a, b, c, d = s:byte(i, i + 3); return ((a * 256 + b) * 256 + c) * 256 + d end
    check(u32(png, 17) == parsed[n .. '.svg'].w and u32(png, 21) == parsed[n .. '.svg'].h,
      string.format('%s.png is %dx%d, the SVG %dx%d', n, u32(png, 17), u32(png, 21), parsed[n .. '.svg'].w, parsed[n .. '.svg'].h))
    check(#png > 5000, n .. '.png is suspiciously small')
  end
end

-- 2. `mtt report RUN` renders the same files again from report.json ----------------------------
for _, f in ipairs(files) do if f ~= 'report.json' then os.remove(run .. '/report/' .. f) end end
local cli_ok, cli_out = cmd_out(string.format('%s report %s', MTT, run))
check(cli_ok, '`mtt report` failed:\n' .. cli_out)
check(cli_out:find('report: ' .. run .. '/report/report.md', 1, true), '`mtt report` output:\n' .. cli_out)
check(cli_out:find('HOLDS: ICL predicts transfer', 1, true), '`mtt report` prints the verdicts')
for _, f in ipairs(files) do
  local again = read(run .. '/report/' .. f)
  check(again == before[f], 'not re-rendered identically: ' .. f)
end
print(string.format('re-render: %d files identical', #files))

-- 3. The generic report of a training run -------------------------------------------------------
local run2 = tmp .. '/run2'
sh('mkdir -p ' .. run2)
local lines = {
  '{"step":10,"loss":3.0,"lr":0.001,"task_loss":{"t1":3.5,"t2":2.5}}',
  '{"step":20,"loss":2.5,"lr":0.001,"val_loss":2.75,"task_loss":{"t1":3.0,"t2":2.25}}',
  '{"step":30,"loss":2.6,"lr":0.0005,"val_loss":2.5,"task_loss":{"t1":2.75,"t2":2.0}}',
  '{"step":20,"task":"t9","k":2,"seed":1,"metric":"rouge_l","value":0.4}',
  '{"step":20,"task":"t9","k":2,"seed":2,"metric":"rouge_l","value":0.6}',
  '{"step":30,"task":"t9","k":2,"seed":1,"metric":"rouge_l","value":0.5}',
  '{"step":30,"task":"t9","k":2,"seed":2,"metric":"rouge_l","value":0.7}',
}
write(run2 .. '/metrics.jsonl', table.concat(lines, '\n') .. '\n')
cli_ok, cli_out = cmd_out(string.format('%s report %s', MTT, run2))
check(cli_out:find('report: ' .. run2 .. '/report/report.md', 1, true), 'generic `mtt report` output:\n' .. cli_out)
for _, f in ipairs({ 'curve_loss.svg', 'curve_lr.svg', 'curve_task_loss.svg', 'eval_1.svg', 'training_summary.csv', 'eval_summary.csv' }) do
  check(read(run2 .. '/report/' .. f), 'generic report lacks ' .. f)
end
check(read(run2 .. '/report/curve_val_loss.svg') == nil, 'val_loss shares the loss plot')
local cl = read(run2 .. '/report/curve_loss.csv')
check(cl == 'series,x,y\nloss,10,3\nloss,20,2.5\nloss,30,2.6\nval_loss,20,2.75\nval_loss,30,2.5\n', 'curve_loss.csv:\n' .. cl)
local ts = read(run2 .. '/report/training_summary.csv')
-- by hand: loss first 3, last 2.6, min 2.5 at step 20; task_loss.t1 first 3.5 last 2.75
check(ts:find('\nloss,3,3,2.6,2.5,20\n', 1, true) and ts:find('\ntask_loss.t1,3,3.5,2.75,,\n', 1, true), 'training_summary.csv:\n' .. ts)
-- eval at step 30 over seeds 0.5, 0.7: mean 0.6, sd = 0.1414.., sem = 0.1, t_{.975,1} = tan(0.475 pi)
local es = read(run2 .. '/report/eval_summary.csv')
local m, lo, hi = es:match('\nrouge_l,k=2,t9,30,([^,]+),([^,]+),([^,]+),2\n')
local h = math.tan(0.475 * math.pi) * 0.1
check(m and math.abs(tonumber(m) - 0.6) < 1e-12 and math.abs(tonumber(lo) - (0.6 - h)) < 1e-9 and math.abs(tonumber(hi) - (0.6 + h)) < 1e-9,
  'eval_summary.csv:\n' .. es)
local g = read(run2 .. '/report/curve_task_loss.svg')
check(g:find('>t1</text>', 1, true) and g:find('>t2</text>', 1, true), 'per-task series in the legend')
-- rebuilding regenerates from metrics.jsonl (the generated report.json is not the source)
write(run2 .. '/metrics.jsonl', table.concat(lines, '\n') .. '\n{"step":40,"loss":2.0,"lr":0.0001}\n')
rep.build(run2)
check(read(run2 .. '/report/curve_loss.csv'):find('\nloss,40,2\n', 1, true), 'generic report follows metrics.jsonl')

-- 4. Without rsvg-convert -------------------------------------------------------------------
local run3 = tmp .. '/run3'
sh('mkdir -p ' .. run3)
write(run3 .. '/metrics.jsonl', lines[1] .. '\n' .. lines[2] .. '\n')
cli_ok, cli_out = cmd_out(string.format('MTT_NO_PNG=1 %s report %s', MTT, run3))
check(cli_out:find('note: PNG output is off', 1, true), 'the command says there are no PNGs:\n' .. cli_out)
local md3 = read(run3 .. '/report/report.md')
check(md3:find('> Plots are embedded as SVG: PNG output is off', 1, true) and md3:find('](curve_loss.svg)', 1, true), 'md without PNG')
check(read(run3 .. '/report/curve_loss.png') == nil, 'no PNG written')

-- 5. Errors ------------------------------------------------------------------------------
local r4 = rep.new(tmp .. '/run4')
expect_error('kind', "kind must be 'line', 'scatter' or 'bar', got pie", r4.plot, r4, { kind = 'pie', name = 'a', series = { { x = {}, y = {} } } })
expect_error('lengths', "series[1] ('s') has 2 x and 1 y values", r4.plot, r4, { kind = 'line', name = 'b', series = { { label = 's', x = { 1, 2 }, y = { 1 } } } })
expect_error('lo length', 'series[1].lo must be an array as long as y (1)', r4.plot, r4, { kind = 'line', name = 'c', series = { { x = { 1 }, y = { 1 }, lo = {} } } })
expect_error('option', "unknown option 'xlabels'", r4.plot, r4, { kind = 'line', name = 'd', xlabels = 'x', y = { 1 } })
r4:plot{ kind = 'line', name = 'e', x = { 1, 2 }, y = { 1, 2 } }
expect_error('duplicate', "name 'e' is used twice", r4.plot, r4, { kind = 'line', name = 'e', x = { 1 }, y = { 1 } })
expect_error('verdict', "unknown option 'hold'", r4.verdict, r4, { claim = 'x', hold = true })
expect_error('table rows', 'rows[2] must be a table, got number', r4.table, r4, { rows = { {}, 3 } })
expect_error('build', 'has neither report/report.json nor metrics.jsonl', rep.build, tmp .. '/nothing')
cli_ok, cli_out = cmd_out(string.format('%s report %s/nothing', MTT, tmp))
check(not cli_ok and cli_out:find('has neither report/report.json nor metrics.jsonl', 1, true), '`mtt report` on a bad folder must fail:\n' .. cli_out)
check(not cli_out:find('traceback', 1, true), 'a command error is a message, not a traceback:\n' .. cli_out)

-- other spellings: groups (bars), logx, names (point labels) give the same files
local r6 = rep.new(tmp .. '/run6/report')
local o6 = r6:plot{ kind = 'bar', name = 'g', categories = { 'u', 'p' }, groups = {
  { label = 'A', values = { 1, 2 }, lo = { 0.5, 1.5 }, hi = { 1.5, 2.5 } }, { label = 'B', values = { 3, 4 } } } }
local o7 = r6:plot{ kind = 'bar', name = 'g2', categories = { 'u', 'p' }, series = {
  { label = 'A', x = { 'u', 'p' }, y = { 1, 2 }, lo = { 0.5, 1.5 }, hi = { 1.5, 2.5 } }, { label = 'B', x = { 'u', 'p' }, y = { 3, 4 } } } }
check(read(o6.svg) == read(o7.svg) and read(o6.csv) == read(o7.csv), 'groups = series for bars')
local o8 = r6:plot{ kind = 'scatter', name = 's1', logx = true, series = { { x = { 1, 10, 100 }, y = { 1, 2, 4 }, names = { 'p', 'q', 'r' } } } }
local o9 = r6:plot{ kind = 'scatter', name = 's2', xlog = true, series = { { x = { 1, 10, 100 }, y = { 1, 2, 4 }, labels = { 'p', 'q', 'r' } } } }
check(read(o8.svg) == read(o9.svg) and read(o8.svg):find('>q</text>', 1, true), 'logx = xlog, names = labels')
expect_error('groups need categories', 'groups need categories', r6.plot, r6, { kind = 'bar', name = 'g3', groups = { { values = { 1 } } } })

-- the report keeps a copy: changing the caller's arrays after r:plot changes nothing
local ys5 = { 1, 2 }
local r5 = rep.new(tmp .. '/run5/report')
r5:plot{ kind = 'line', name = 'm', x = { 1, 2 }, y = ys5 }
ys5[2] = 99
r5:write()
local svg5 = read(tmp .. '/run5/report/m.svg')
rep.render(tmp .. '/run5/report/report.json')
check(read(tmp .. '/run5/report/m.svg') == svg5 and not svg5:find('>99<', 1, true), 'report data are copied at r:plot')

testlib.rmdir(tmp)
checker.done()
