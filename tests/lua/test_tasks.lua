-- test_tasks.lua: mtt.tasks.load and Task objects (lua/mtt/tasks*.lua) against references:
--   1. The 28 real Super-NaturalInstructions files (../shared/data/niv2, some with a bare NaN)
--      load, and every field equals what Python's json module reads from the same files
--      (definition, categories, source, examples, instance ids/inputs/outputs), in file order;
--      inferred answer options and metrics follow the documented rule recomputed in Python.
--   2. The split rule (FNV-1a + mulberry32 + Fisher-Yates, test = first min(100, n/4)) is
--      re-implemented in Python from its description and gives the same train/test ids.
--   3. The same files from a folder, a glob, a split list (NIv2 layout, tasks_dir folder and
--      archive), a tar.zst, a tar.gz and a zip give identical tasks (deep-equal, same order).
--   4. Every malformed variant (missing field, wrong type, empty instances, invalid UTF-8,
--      truncated JSON, a file over max_bytes, duplicate names/ids, ...) fails the whole load with
--      a message naming the file and the field (and instance index).
--   5. Lua specs (a table, a seeded generator; the README's ten-line example), filters and the
--      one-line summary.
-- Run: mtt run tests/lua/test_tasks.lua (from the repository root).
local mtt = require 'mtt'
local cjson = require('cjson').new()
local tasks = mtt.tasks
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')

local NIV2 = testlib.niv2_dir('test_tasks')
local checker = testlib.checker('test_tasks', { stop = true })
local check, expect_error = checker.check, checker.expect_error
local sh, read, write = testlib.must_sh, testlib.must_read, testlib.write
-- deep equality of plain data; ignore: keys skipped at every level
local function deep_equal(a, b, path, ignore)
  path = path or ''
  if type(a) ~= type(b) then return false, path .. ': ' .. type(a) .. ' vs ' .. type(b) end
  if type(a) ~= 'table' then
    if a == b then return true end
    return false, path .. ': ' .. tostring(a) .. ' vs ' .. tostring(b)
  end
  for k, v in pairs(a) do
    if not (ignore and ignore[k]) then
      local ok, why = deep_equal(v, b[k], path .. '.' .. tostring(k), ignore)
      if not ok then return false, why end
    end
  end
  for k in pairs(b) do
    if not (ignore and ignore[k]) and a[k] == nil then return false, path .. '.' .. tostring(k) .. ': missing on the left' end
  end
  return true
end

local tmp = testlib.tmpdir()

-- ---- 1. the real files against Python's json ----
local files = {}
for _, f in ipairs(mtt.io.listdir(NIV2)) do if f:find('%.json$') then files[#files + 1] = f end end
check(#files == 28, 'expected 28 shared task files, found %d', #files)

local ref_py = tmp .. '/ref.py'
write(ref_py, [==[
import json, sys, glob, os
M = 2**32
def fnv(s):
    h = 2166136261
    for b in s.encode('utf-8'):
        h = ((h ^ b) * 16777619) % M
    return h
class Mulberry:
    def __init__(self, seed): self.s = seed % M
    def u32(self):
        self.s = (self.s + 0x6D2B79F5) % M
        z = self.s
        z = ((z ^ (z >> 15)) * (z | 1)) % M
        z = (z ^ ((z + ((z ^ (z >> 7)) * (z | 61)) % M) % M)) % M
        return (z ^ (z >> 14)) % M
    def randint(self, m): return 1 + (self.u32() * m) // M   # 1..m, as floor(u / 2^32 * m) + 1
out = {'tasks': [], 'rng': {}}
r = Mulberry(12345)
out['rng']['mulberry_12345'] = [r.u32() for _ in range(20)]
out['rng']['fnv'] = [fnv(s) for s in ['', 'a', 'task1146_country_capital', '0:task062_bigbench_repeat_copy_logic', 'é']]
for path in sorted(glob.glob(os.path.join(sys.argv[1], '*.json'))):
    d = json.load(open(path, encoding='utf-8'))
    name = os.path.basename(path)[:-5]
    inst = [{'id': i['id'], 'input': i['input'], 'outputs': i['output']} for i in d['Instances']]
    # the documented split
    n = len(inst)
    r = Mulberry(fnv('0:' + name))
    perm = list(range(1, n + 1))
    for i in range(n, 1, -1):
        j = r.randint(i)
        perm[i - 1], perm[j - 1] = perm[j - 1], perm[i - 1]
    n_test = min(100, n // 4)
    if n_test < 1 and n >= 2: n_test = 1
    test_idx = set(perm[:n_test])
    # the documented option inference
    opts = None
    if n >= 20 and all(len(i['outputs']) == 1 for i in inst):
        distinct = sorted(set(i['outputs'][0] for i in inst), key=lambda s: s.encode('utf-8'))
        if len(distinct) <= 10: opts = distinct
    out['tasks'].append({
        'name': name, 'definition': '\n'.join(d['Definition']), 'categories': d['Categories'],
        'source': d.get('Source', []),
        'positive_examples': d['Positive Examples'], 'negative_examples': d.get('Negative Examples', []),
        'instances': inst, 'options': opts, 'metric': 'acc' if opts else 'rouge_l',
        'test_ids': [inst[i - 1]['id'] for i in range(1, n + 1) if i in test_idx],
        'train_ids': [inst[i - 1]['id'] for i in range(1, n + 1) if i not in test_idx],
    })
json.dump(out, open(sys.argv[2], 'w'), ensure_ascii=False)
]==])
sh(string.format('/usr/bin/python3 %s %s %s/ref.json', ref_py, NIV2, tmp))
local ref = cjson.decode(read(tmp .. '/ref.json'))

-- the rng against the Python reference
local rngm = require 'mtt.tasks.rng'
local r = rngm.new(12345)
for i, v in ipairs(ref.rng.mulberry_12345) do
  local got = r:u32()
  check(got == v, 'mulberry32 draw %d: %d vs Python %d', i, got, v)
end
for i, s in ipairs({ '', 'a', 'task1146_country_capital', '0:task062_bigbench_repeat_copy_logic', 'é' }) do
  check(rngm.hash(s) == ref.rng.fnv[i], 'fnv1a(%q) = %d, Python %d', s, rngm.hash(s), ref.rng.fnv[i])
end

local t0 = os.clock()
local all = tasks.load(NIV2)
local load_s = os.clock() - t0
check(#all == 28, 'loaded %d tasks', #all)
print(string.format('loaded the 28 files in %.3f s CPU', load_s))
local n_inst = 0
for i, t in ipairs(all) do
  local want = ref.tasks[i]
  check(t.name == want.name, 'task %d: name %s vs %s', i, t.name, want.name)
  for _, key in ipairs({ 'definition', 'categories', 'source', 'positive_examples', 'negative_examples', 'instances',
    'metric' }) do
    local ok, why = deep_equal(t[key], want[key], t.name .. '.' .. key)
    check(ok, '%s', why)
  end
  if want.options == cjson.null then
    check(t.options == nil, '%s: options inferred but the rule says none', t.name)
  else
    local ok, why = deep_equal(t.options, want.options, t.name .. '.options')
    check(ok, '%s', why)
  end
  local ids = function(list) local o = {} for j, x in ipairs(list) do o[j] = x.id end return o end
  check(deep_equal(ids(t.test), want.test_ids), '%s: test split differs from the Python reference', t.name)
  check(deep_equal(ids(t.train), want.train_ids), '%s: train split differs from the Python reference', t.name)
  check(#t.test == math.min(100, math.floor(#t.instances / 4)), '%s: test size %d', t.name, #t.test)
  check(t.path == NIV2 .. '/' .. t.name .. '.json', '%s: path %s', t.name, t.path)
  n_inst = n_inst + #t.instances
end
check(n_inst == 5863, 'instances in total: %d (README says 5863)', n_inst)
local n_acc = 0
for _, t in ipairs(all) do if t.metric == 'acc' then n_acc = n_acc + 1 end end
check(n_acc == 5, 'tasks with inferred options: %d (expected 5: 1189, 1192, 1193, 1333, 1403)', n_acc)
print(string.format('loaded 28 NIv2 files (%d instances) in %.3f s; fields, splits and options equal Python\'s\n', n_inst, load_s))

-- splits: independent of load order, changeable with task:split
local one = tasks.load(NIV2 .. '/task1509_evalution_antonyms.json')[1]
check(deep_equal(one.test, all[28].test), 'the split depends on what else was loaded')
local tr1, te1 = one:split { seed = 1 }
check(#te1 == 100 and #tr1 == 451 and not deep_equal(te1, one.test), 'split{seed = 1} should differ from the default')
local tr2, te2 = one:split { test_fraction = 0.5, max_test = 1000 }
check(#te2 == 275 and #tr2 == 276, 'split{test_fraction = 0.5}: %d / %d', #tr2, #te2)
local seen = {}
for _, x in ipairs(tr2) do seen[x] = true end
for _, x in ipairs(te2) do check(not seen[x], 'train and test overlap') end
expect_error('split bad option', { 'task:split', "unknown option 'frac'" }, one.split, one, { frac = 0.1 })
-- the summary line
check(tostring(all[4]) == 'Task(task1146_country_capital, categories=Misc., instances=231 (train 174, test 57), metric=rouge_l)',
  'tostring: %s', tostring(all[4]))
check(tostring(all[10]):find('metric=acc, options=2', 1, true), 'tostring: %s', tostring(all[10]))

-- ---- 3. the same tasks from other containers ----
local function same_tasks(a, b, what)
  check(#a == #b, '%s: %d vs %d tasks', what, #a, #b)
  for i = 1, #a do
    local ok, why = deep_equal(a[i], b[i], what .. '[' .. i .. ']', { path = true, _by_id = true })
    check(ok, '%s', why)
  end
end
local arch = tmp .. '/arch'
mtt.io.makedirs(arch .. '/niv2')
sh(string.format('cp %s/*.json %s/niv2/', NIV2, arch))
local names = table.concat(files, ' ')
sh(string.format('cd %s && tar --zstd -cf %s/tasks.tar.zst %s', arch .. '/niv2', tmp, names))
sh(string.format('cd %s && tar -czf %s/tasks.tar.gz %s', arch, tmp, (' ' .. names):gsub(' ', ' niv2/')))  -- in a folder
sh(string.format('cd %s && zip -q -X %s/tasks.zip %s', arch .. '/niv2', tmp, names))
local from_zst = tasks.load(tmp .. '/tasks.tar.zst')
local from_zip = tasks.load(tmp .. '/tasks.zip')
same_tasks(from_zst, from_zip, 'tar.zst vs zip')
same_tasks(from_zst, all, 'tar.zst vs folder')
same_tasks(tasks.load(tmp .. '/tasks.tar.gz'), all, 'tar.gz vs folder')
check(from_zip[4].path == tmp .. '/tasks.zip:task1146_country_capital.json', 'archive path: %s', from_zip[4].path)
-- glob and array
local g = tasks.load(NIV2 .. '/task14*.json')
check(#g == 6 and g[1].name == 'task1403_check_validity_date_mmddyyyy' and g[6].name == 'task1428_country_surface_area',
  'glob task14*.json: %d tasks', #g)
check(#tasks.load(NIV2 .. '/task1[34]?[0-4]_*.json') == 4 and #tasks.load(NIV2 .. '/task1[!3]*.json') == 20,
  'glob with ? and [..] (counts from Python fnmatch)')
local arr = tasks.load({ NIV2 .. '/task1509_evalution_antonyms.json', NIV2 .. '/task062_bigbench_repeat_copy_logic.json' })
check(arr[1].name == 'task1509_evalution_antonyms' and arr[2].name == 'task062_bigbench_repeat_copy_logic', 'array order')
check(#tasks.load({ all[1], NIV2 .. '/task1509_evalution_antonyms.json' }) == 2, 'Task objects pass through')
-- split list in NIv2's layout, in the list's order (not sorted)
local root = tmp .. '/ni'
mtt.io.makedirs(root .. '/splits/default')
mtt.io.makedirs(root .. '/tasks')
sh(string.format('cp %s/task1146_country_capital.json %s/task062_bigbench_repeat_copy_logic.json %s/tasks/', NIV2, NIV2, root))
write(root .. '/splits/default/train_tasks.txt', 'task1146_country_capital\n# a comment\n\n  task062_bigbench_repeat_copy_logic  \n')
local sl = tasks.load(root .. '/splits/default/train_tasks.txt')
check(#sl == 2 and sl[1].name == 'task1146_country_capital' and sl[2].name == 'task062_bigbench_repeat_copy_logic',
  'split list order')
same_tasks({ sl[1] }, { all[4] }, 'split list vs folder')
local sl2 = tasks.load(root .. '/splits/default/train_tasks.txt', { tasks_dir = tmp .. '/tasks.tar.zst' })
same_tasks(sl2, sl, 'split list with an archive tasks_dir')
write(root .. '/splits/default/bad.txt', 'task1146_country_capital\ntask9999_nothing\n')
expect_error('split list, unknown name', { 'bad.txt:2', "task 'task9999_nothing' not found" },
  tasks.load, root .. '/splits/default/bad.txt')
-- filters
local f1 = tasks.load(NIV2, { names = { 'task1509_evalution_antonyms', 'task1146_country_capital' } })
check(#f1 == 2 and f1[1].name == 'task1146_country_capital', 'names filter keeps file order')
check(#tasks.load(NIV2, { categories = { 'Word Analogy', 'Word Semantics' } }) == 2, 'categories filter')
check(#tasks.load(NIV2, { categories = { 'Misc.' } }) == 15, 'categories filter Misc.')
expect_error('unknown name in filter', { "no task named 'task1_nope'" }, tasks.load, NIV2, { names = { 'task1_nope' } })
expect_error('unknown option', { "unknown option 'name'" }, tasks.load, NIV2, { name = {} })

-- ---- 4. malformed files: each fails the whole load, naming file and field ----
local base = read(NIV2 .. '/task1146_country_capital.json')
local bad = tmp .. '/bad'
mtt.io.makedirs(bad)
local obj_text = base -- edits on the text keep everything else exactly as published
local function variant(name, text)
  local p = bad .. '/' .. name .. '.json'
  write(p, text)
  return p
end
local function sub1(s, a, b)
  local i, j = s:find(a, 1, true)
  assert(i, 'pattern not in file: ' .. a)
  return s:sub(1, i - 1) .. b .. s:sub(j + 1)
end
-- field paths counted the way the message does (1-based)
local cases = {
  { 'missing_definition', sub1(obj_text, '"Definition"', '"Definitio"'), { 'missing_definition.json', 'Definition', 'missing field' } },
  { 'missing_instances', sub1(obj_text, '"Instances"', '"Instancez"'), { 'Instances', 'missing field' } },
  { 'missing_input', sub1(obj_text, '"input": "Albania"', '"inptu": "Albania"'), { 'Instances[2].input', 'missing field' } },
  { 'wrong_type_output', sub1(obj_text, '[\n                "Tirana"\n            ]', '5'),
    { 'Instances[2].output', 'expected an array of strings, got number' } },
  { 'wrong_type_output_item', sub1(obj_text, '"Tirana"', 'null'), { 'Instances[2].output[1]', 'got null' } },
  { 'empty_output', sub1(obj_text, '[\n                "Tirana"\n            ]', '[]'), { 'Instances[2].output', 'must not be empty' } },
  { 'wrong_type_def', sub1(obj_text, '"Definition": [', '"Definition": {"a": ['):gsub('("Definition": {"a": %[.-%])', '%1}'),
    { 'Definition', 'expected an array of strings, got object' } },
  { 'wrong_type_categories', sub1(obj_text, '"Categories": [\n        "Misc."\n    ]', '"Categories": "Misc."'),
    { 'Categories', 'expected an array of strings, got string' } },
  { 'wrong_type_pos', sub1(obj_text, '"output": "Washington"', '"output": ["Washington"]'),
    { 'Positive Examples[1].output', 'expected a string, got array' } },
  { 'empty_instances', obj_text:sub(1, obj_text:find('"Instances": [', 1, true) - 1) .. '"Instances": [],\n' ..
    obj_text:sub((obj_text:find('    "Instance License"', 1, true))), { 'Instances', 'empty' } },
  { 'invalid_utf8', sub1(obj_text, '"Albania"', '"Alb\255nia"'), { 'invalid_utf8.json', 'Instances[2].input', 'invalid UTF-8' } },
  { 'invalid_utf8_overlong', sub1(obj_text, '"Albania"', '"Alb\192\175nia"'), { 'Instances[2].input', 'invalid UTF-8' } },
  { 'invalid_utf8_surrogate', sub1(obj_text, '"Albania"', '"Alb\237\160\128nia"'), { 'Instances[2].input', 'invalid UTF-8' } },
  { 'invalid_utf8_ignored_field', sub1(obj_text, 'Ravsehaj', 'Rav\254ehaj'), { 'Contributors[1]', 'invalid UTF-8' } },
  { 'lone_surrogate_escape', sub1(obj_text, '"Albania"', '"Alb\\ud800nia"'), { 'JSON', 'cannot parse', 'line ' } },
  { 'truncated', obj_text:sub(1, math.floor(#obj_text / 2)), { 'truncated.json', 'JSON', 'cannot parse' } },
  { 'top_level_array', '[1, 2]', { 'JSON', 'top level must be an object' } },
  { 'duplicate_id', sub1(obj_text, '"task1146-07c79cd44f0247a48202ecd16eac2712"', '"task1146-caea1179adc149ffb2a3ecb2ea3abefc"'),
    { 'Instances[2].id', 'duplicate id', 'Instances[1]' } },
  { 'bad_metric', sub1(obj_text, '"Instances": [', '"Metric": "bleu", "Instances": ['), { 'Metric', "unknown metric 'bleu'" } },
  { 'acc_without_options', sub1(obj_text, '"Instances": [', '"Metric": "acc", "Instances": ['), { 'Metric', 'needs Answer Options' } },
  { 'option_not_output', sub1(obj_text, '"Instances": [', '"Answer Options": ["Kabul", "x"], "Instances": ['),
    { 'Instances[2].output', 'Answer Options' } },
  { 'duplicate_option', sub1(obj_text, '"Instances": [', '"Answer Options": ["a", "a"], "Instances": ['),
    { 'Answer Options[2]', 'duplicate option' } },
}
for _, c in ipairs(cases) do
  local text = type(c[2]) == 'string' and c[2] or c[2] -- gsub returns (text, count): keep the text
  local p = variant(c[1], text)
  local pieces = { 'mtt.tasks.load', p }
  for _, x in ipairs(c[3]) do pieces[#pieces + 1] = x end
  expect_error(c[1], pieces, tasks.load, p)
  os.remove(p)
end
-- instance indices: break the 200th instance
do
  local n, t = 0, obj_text
  t = t:gsub('"input": "', function(m) n = n + 1; if n == 204 then return '"input": 7, "x": "' end end) -- 2 + 2 examples first
  local p = variant('bad_200', t)
  expect_error('200th instance', { 'Instances[200].input', 'expected a string, got number' }, tasks.load, p)
  os.remove(p)
end
-- a valid JSON with Answer Options and Metric loads with them
do
  local p = variant('task_ok_options', sub1(obj_text, '"Instances": [', '"Metric": "exact_match", "Instances": ['))
  local t = tasks.load(p)[1]
  check(t.metric == 'exact_match' and t.options == nil, 'explicit Metric: %s', t.metric)
  os.remove(p)
end
-- over max_bytes: refused before reading (a sparse 100 MB file over the 64 MiB default)
do
  local p = bad .. '/huge.json'
  sh('truncate -s 100M ' .. p)
  expect_error('huge file', { p, '104857600 bytes', 'over max_bytes = 67108864', 'not read' }, tasks.load, p)
  expect_error('max_bytes option', { 'task1146_country_capital.json', 'over max_bytes = 1000' }, tasks.load,
    NIV2 .. '/task1146_country_capital.json', { max_bytes = 1000 })
  expect_error('max_bytes in an archive', { 'tasks.zip:task1087_two_number_sum.json', 'over max_bytes = 20000' },
    tasks.load, tmp .. '/tasks.zip', { max_bytes = 20000 })
  os.remove(p)
end
-- a folder / archive with one bad file fails as a whole
do
  local d = tmp .. '/mixed'
  mtt.io.makedirs(d)
  sh(string.format('cp %s/task1146_country_capital.json %s/task1189_check_char_in_string.json %s/', NIV2, NIV2, d))
  write(d .. '/task2000_broken.json', obj_text:sub(1, 500))
  expect_error('folder with a bad file', { 'task2000_broken.json', 'cannot parse' }, tasks.load, d)
  sh(string.format('cd %s && zip -q ../mixed.zip *.json', d))
  expect_error('zip with a bad member', { 'mixed.zip:task2000_broken.json', 'cannot parse' }, tasks.load, tmp .. '/mixed.zip')
  sh(string.format('cd %s && tar --zstd -cf ../mixed.tar.zst *.json', d))
  expect_error('tar.zst with a bad member', { 'mixed.tar.zst:task2000_broken.json' }, tasks.load, tmp .. '/mixed.tar.zst')
  -- a corrupt archive
  write(tmp .. '/corrupt.tar.zst', read(tmp .. '/tasks.tar.zst'):sub(1, 3000))
  expect_error('truncated archive', { 'corrupt.tar.zst' }, tasks.load, tmp .. '/corrupt.tar.zst')
end
-- duplicate task names in one load
expect_error('duplicate names', { "duplicate task name 'task1146_country_capital'", NIV2, 'tasks.zip' }, tasks.load,
  { NIV2 .. '/task1146_country_capital.json', tmp .. '/tasks.zip' })
expect_error('missing path', { 'no such file or folder' }, tasks.load, tmp .. '/nothing.json')
expect_error('glob without match', { 'no file matches' }, tasks.load, NIV2 .. '/zz*.json')
expect_error('not a task file', { 'not a task file' }, tasks.load, NIV2 .. '/README.md')

-- ---- 5. Lua specs ----
-- the README's ten-line example, as a file
local spec_dir = tmp .. '/specs'
mtt.io.makedirs(spec_dir)
write(spec_dir .. '/add_two_digits.lua', [[
return {
  categories = {'Arithmetic'},
  definition = 'Add the two numbers.',
  n = 200, seed = 1, unique = true,
  generate = function(rng, i)
    local a, b = rng:random(10, 99), rng:random(10, 99)
    return a .. ' + ' .. b, tostring(a + b)
  end,
}
]])
local s1 = tasks.load(spec_dir)[1]
local s2 = tasks.load(spec_dir .. '/add_two_digits.lua')[1]
check(s1.name == 'add_two_digits' and #s1.instances == 200 and #s1.test == 50, 'spec: %s', tostring(s1))
check(deep_equal(s1.instances, s2.instances), 'same seed, same instances')
local inputs = {}
for _, inst in ipairs(s1.instances) do
  local a, b = inst.input:match('^(%d+) %+ (%d+)$')
  check(a and tonumber(inst.outputs[1]) == tonumber(a) + tonumber(b), 'generated instance %s = %s', inst.input, inst.outputs[1])
  check(not inputs[inst.input], 'unique = true yet %s repeats', inst.input)
  inputs[inst.input] = true
end
check(s1.instances[1].id == 'add_two_digits-1', 'generated ids: %s', s1.instances[1].id)
check(s1.metric == 'rouge_l' and s1.path == spec_dir .. '/add_two_digits.lua', 'spec metric/path')
-- seed changes the instances; the first m do not depend on n
local function gen(seed, n)
  return tasks.define { name = 'g', n = n, seed = seed, generate = function(rng) return tostring(rng:random(1, 1e6)), 'x' end }
end
check(not deep_equal(gen(1, 30).instances, gen(2, 30).instances), 'another seed, other instances')
check(deep_equal(gen(1, 30).instances[20], gen(1, 60).instances[20]), 'instance 20 depends on n')
-- a table of instances; options and metric
local cls = tasks.define {
  name = 'parity', definition = 'Is the number even or odd?', categories = { 'Arithmetic', 'Classification' },
  options = { 'even', 'odd' },
  instances = { { input = '4', output = 'even' }, { input = '7', output = 'odd' }, { input = '10', outputs = { 'even' }, id = 'ten' } },
}
check(cls.metric == 'acc' and #cls.options == 2 and cls.instances[3].id == 'ten' and cls.instances[1].id == 'parity-1', 'define')
check(#cls.test == 1 and #cls.train == 2, 'n = 3: one test instance')
check(cls:instance('ten') == cls.instances[3], 'task:instance(id)')
check(#tasks.define { name = 'one', instances = { { input = 'a', output = 'b' } } }.test == 0, 'n = 1: no test instance')
-- spec errors
expect_error('define unknown key', { 'mtt.tasks.define', "unknown option 'instance'" }, tasks.define,
  { name = 'x', instance = {} })
expect_error('define both', { 'exactly one of instances' }, tasks.define,
  { name = 'x', instances = { { input = 'a', output = 'b' } }, generate = function() end, n = 1, seed = 1 })
expect_error('define no seed', { 'generate needs n and seed' }, tasks.define, { name = 'x', generate = function() end, n = 3 })
expect_error('define empty', { 'instances is empty' }, tasks.define, { name = 'x', instances = {} })
expect_error('define bad output', { 'instances[2].output', 'must be a string or a list of strings, got number' }, tasks.define,
  { name = 'x', instances = { { input = 'a', output = 'b' }, { input = 'a', output = 3 } } })
expect_error('define generator error', { 'generate(rng, 1) failed', 'boom' }, tasks.define,
  { name = 'x', n = 2, seed = 0, generate = function() error('boom') end })
expect_error('define not unique enough', { 'unique inputs' }, tasks.define,
  { name = 'x', n = 5, seed = 0, unique = true, generate = function(rng) return tostring(rng:random(2)), 'y' end })
expect_error('define bad utf8', { 'invalid UTF-8' }, tasks.define, { name = 'x', instances = { { input = '\255', output = 'b' } } })
write(spec_dir .. '/broken.lua', 'return 42')
expect_error('spec returning a number', { 'broken.lua', 'must return a table' }, tasks.load, spec_dir)
write(spec_dir .. '/broken.lua', 'return {')
expect_error('spec with a syntax error', { 'broken.lua' }, tasks.load, spec_dir .. '/broken.lua')
os.remove(spec_dir .. '/broken.lua')
-- Lua specs and JSON files in one folder, sorted by file name
sh(string.format('cp %s/task1146_country_capital.json %s/', NIV2, spec_dir))
local mixed = tasks.load(spec_dir)
check(#mixed == 2 and mixed[1].name == 'add_two_digits' and mixed[2].name == 'task1146_country_capital', 'folder of .lua + .json')

testlib.rmdir(tmp)
checker.done()
