-- test_collection.lua: the shipped task collection (tools/tasks/build_tasks.lua, tasks/README.md).
-- Builds it into a temporary folder and checks: the build is deterministic (byte-identical to
-- build/data/tasks, or to a second fresh build when that one is missing or older than the
-- builder); MANIFEST's checksums against coreutils' sha256sum; every file is strict JSON (cjson)
-- in the Super-NaturalInstructions schema with mtt's "Answer Options"/"Metric"; sizes and counts
-- (>= 60 tasks, >= 10 categories, 150-600 instances each); demonstrations are not instances;
-- the default split (every task in exactly one list, no category or source shared between the
-- lists); the README's generated table; and that prompts fit a small model: Tk-Instruct prompts
-- with 2 demonstrations, tokenized by a 4096-token BPE trained here on fortune files (English
-- text the collection's tasks do not use as instances... except the two held-out fortune
-- tasks), fit 128 tokens for >= 95% of all instances.
local mtt = require 'mtt'
local cjson = require('cjson').new()
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')

local checker = testlib.checker('test_collection', { stop = true })
local check, read, sh = checker.check, testlib.read, testlib.sh
local function lines(text)
  local t = {}
  for l in text:gmatch('[^\n]+') do t[#t + 1] = l end
  return t
end
local function capture(cmd)
  local p = io.popen(cmd)
  local s = p:read('*a')
  p:close()
  return s
end
local function newer_than(a, b) -- is file a newer than file b (find -newer)
  return capture('find ' .. a .. ' -newer ' .. b .. ' 2>/dev/null') ~= ''
end

-- ---- build ----
local tmp = os.tmpname()
os.remove(tmp)
local out = tmp .. '-tasks'
local wall0 = os.time()
check(sh('luajit tools/tasks/build_tasks.lua ' .. out .. ' > ' .. tmp .. '.log 2>&1'),
  'build_tasks failed: ' .. tostring(read(tmp .. '.log')))
local summary = read(tmp .. '.log')
print((summary:gsub('\n$', '')))
-- (no time limit here: timings are for benchmarks, this machine is shared; its time is printed at the end)

-- determinism: against build/data/tasks when current, else against a second build
local manifest = read(out .. '/MANIFEST')
check(manifest, 'no MANIFEST written')
local ref_dir = 'build/data/tasks'
local stale = not read(ref_dir .. '/MANIFEST')
if not stale then
  for _, f in ipairs(lines(capture('ls tools/tasks/*.lua'))) do
    stale = stale or newer_than(f, ref_dir .. '/MANIFEST')
  end
end
if stale then
  ref_dir = tmp .. '-tasks2'
  check(sh('luajit tools/tasks/build_tasks.lua ' .. ref_dir .. ' > /dev/null 2>&1'), 'second build failed')
end
check(read(ref_dir .. '/MANIFEST') == manifest,
  'two builds differ: ' .. out .. '/MANIFEST vs ' .. ref_dir .. '/MANIFEST')
print('deterministic: identical MANIFEST to ' .. ref_dir)

-- MANIFEST against sha256sum and the files' sizes; nothing unlisted in the folder
local listed = {}
local names = {}
for _, l in ipairs(lines(manifest)) do
  local sum, bytes, file = l:match('^(%x+)  (%d+)  (%S+)$')
  check(sum and #sum == 64, 'bad MANIFEST line: ' .. l)
  local ref = capture('sha256sum ' .. out .. '/' .. file):match('^(%x+)')
  check(ref == sum, file .. ': sha256 ' .. tostring(ref) .. ' but MANIFEST says ' .. sum)
  check(#read(out .. '/' .. file) == tonumber(bytes), file .. ': size differs from MANIFEST')
  listed[file] = true
  local name = file:match('^(mtt%d%d%d_[%w_]+)%.json$')
  if name then names[#names + 1] = name end
end
for _, f in ipairs(lines(capture('ls ' .. out))) do
  check(listed[f] or f == 'MANIFEST', 'file not in MANIFEST: ' .. f)
end

-- ---- every task file ----
local KEYS = { 'Contributors', 'Source', 'URL', 'Categories', 'Reasoning', 'Definition', 'Input_language',
  'Output_language', 'Instruction_language', 'Domains', 'Positive Examples', 'Negative Examples', 'Instances',
  'Instance License' }
local METRICS = { exact_match = true, rouge_l = true, acc = true }
local function string_list(v, what, min)
  check(type(v) == 'table', what .. ' is not a list')
  check(#v >= (min or 0), what .. ' has fewer than ' .. (min or 0) .. ' elements')
  for i, s in ipairs(v) do check(type(s) == 'string' and s ~= '', what .. '[' .. i .. '] is not a non-empty string') end
end
local tasks, total_bytes, total_instances = {}, 0, 0
local categories = {}
for _, name in ipairs(names) do
  local text = read(out .. '/' .. name .. '.json')
  total_bytes = total_bytes + #text
  local ok, d = pcall(cjson.decode, text)
  check(ok, name .. ': not valid JSON: ' .. tostring(d))
  local where = name .. ': '
  for _, k in ipairs(KEYS) do check(d[k] ~= nil, where .. 'missing key ' .. k) end
  for _, k in ipairs({ 'Contributors', 'Source', 'URL', 'Input_language', 'Output_language', 'Instruction_language',
    'Domains', 'Instance License' }) do string_list(d[k], where .. k, 1) end
  string_list(d.Reasoning, where .. 'Reasoning', 0)
  string_list(d.Categories, where .. 'Categories', 1)
  check(#d.Categories == 1, where .. 'one category expected')
  string_list(d.Definition, where .. 'Definition', 1)
  check(#d.Definition == 1 and #d.Definition[1] <= 100, where .. 'Definition: one short sentence expected')
  check(METRICS[d.Metric], where .. 'Metric ' .. tostring(d.Metric))
  local options = d['Answer Options']
  check((options ~= nil) == (d.Metric == 'acc'), where .. 'Answer Options iff Metric acc')
  local is_option, used_option = {}, {}
  if options then
    string_list(options, where .. 'Answer Options', 2)
    for _, o in ipairs(options) do is_option[o] = true end
  end
  local function example(e, what)
    check(type(e) == 'table', what .. ' is not an object')
    for _, k in ipairs({ 'input', 'output', 'explanation' }) do
      check(type(e[k]) == 'string' and e[k] ~= '', what .. '.' .. k .. ' is not a non-empty string')
    end
    if options then check(is_option[e.output], what .. '.output is not an answer option') end
  end
  local pos, neg = d['Positive Examples'], d['Negative Examples']
  check(#pos >= 2 and #pos <= 3, where .. '2-3 positive examples expected')
  check(#neg == 1, where .. 'one negative example expected')
  for i, e in ipairs(pos) do example(e, where .. 'Positive Examples[' .. i .. ']') end
  example(neg[1], where .. 'Negative Examples[1]')
  local inst = d.Instances
  check(#inst >= 150 and #inst <= 600, where .. #inst .. ' instances (150-600 expected)')
  local inputs = {}
  for i, x in ipairs(inst) do
    check(x.id == name .. '-' .. i, where .. 'instance ' .. i .. ' has id ' .. tostring(x.id))
    check(type(x.input) == 'string' and x.input ~= '', where .. x.id .. ': input')
    check(not inputs[x.input], where .. 'input repeated: ' .. x.input)
    inputs[x.input] = true
    string_list(x.output, where .. x.id .. '.output', 1)
    local refs = {}
    for _, o in ipairs(x.output) do
      check(not refs[o], where .. x.id .. ': reference repeated: ' .. o)
      refs[o] = true
    end
    if options then
      check(#x.output == 1 and is_option[x.output[1]], where .. x.id .. ': output is not one answer option')
      used_option[x.output[1]] = true
    end
  end
  for _, e in ipairs(pos) do check(not inputs[e.input], where .. 'a positive example is also an instance: ' .. e.input) end
  for _, o in ipairs(options or {}) do check(used_option[o], where .. 'answer option never used: ' .. o) end
  check(not inputs[neg[1].input], where .. 'the negative example is also an instance')
  categories[d.Categories[1]] = true
  total_instances = total_instances + #inst
  tasks[name] = d
end
local ncat = 0
for _ in pairs(categories) do ncat = ncat + 1 end
check(#names >= 60, #names .. ' tasks (>= 60 expected)')
check(ncat >= 10, ncat .. ' categories (>= 10 expected)')
check(total_bytes < 8e6, 'the collection has ' .. total_bytes .. ' bytes (a few MB expected)')
print(string.format('%d tasks, %d categories, %d instances, %.1f MB', #names, ncat, total_instances, total_bytes / 1e6))

-- ---- the default split ----
local split = {}
local lists = {}
for _, which in ipairs({ 'train', 'test' }) do
  local text = read('tasks/splits/default/' .. which .. '_tasks.txt')
  check(text, 'tasks/splits/default/' .. which .. '_tasks.txt is missing')
  check(read(out .. '/' .. which .. '_tasks.txt') == text,
    which .. '_tasks.txt: the built copy differs from tasks/splits/default/ (run the builder with --docs)')
  lists[which] = lines(text)
  for _, n in ipairs(lists[which]) do
    check(tasks[n], which .. '_tasks.txt names an unknown task ' .. n)
    check(not split[n], n .. ' is in both lists, or twice')
    split[n] = which
  end
end
for _, n in ipairs(names) do check(split[n], n .. ' is in no split list') end
local cat_of, src_of = { train = {}, test = {} }, { train = {}, test = {} }
for _, which in ipairs({ 'train', 'test' }) do
  for _, n in ipairs(lists[which]) do
    cat_of[which][tasks[n].Categories[1]] = true
    src_of[which][table.concat(tasks[n].Source, '; ')] = true
  end
end
local test_cats = 0
for c in pairs(cat_of.test) do
  test_cats = test_cats + 1
  check(not cat_of.train[c], 'category ' .. c .. ' is in both splits')
end
for s in pairs(src_of.test) do check(not src_of.train[s], 'source ' .. s .. ' is in both splits') end
check(#lists.test >= 10 and #lists.test <= 20, #lists.test .. ' held-out tasks (about 12 expected)')
check(test_cats >= 4, test_cats .. ' held-out categories (>= 4 expected)')
print(string.format('split: %d train, %d held out in %d categories', #lists.train, #lists.test, test_cats))

-- ---- README: the generated table is current and names every task ----
local readme = read('tasks/README.md')
check(readme, 'tasks/README.md is missing')
local section = readme:match('<!%-%- BEGIN TASK TABLE[^\n]*\n(.-)<!%-%- END TASK TABLE %-%->')
check(section, 'tasks/README.md lacks the task table markers')
check(section == read(out .. '/TABLE.md'), 'tasks/README.md task table is out of date (run the builder with --docs)')
for _, n in ipairs(names) do check(readme:find('| ' .. n .. ' |', 1, true), 'tasks/README.md does not list ' .. n) end

-- ---- prompts fit 128 tokens ----
local files = {}
for _, f in ipairs({ 'computers', 'people', 'miscellaneous', 'fortunes', 'wisdom', 'science', 'politics', 'work',
  'literature', 'definitions' }) do files[#files + 1] = '/usr/share/games/fortunes/' .. f .. '.u8' end
local tok = mtt.tokenizer.train { files = files, vocab_size = 4096 }
local fit, n_all = 0, 0
for _, name in ipairs(names) do
  local d = tasks[name]
  local head = 'Definition: ' .. d.Definition[1] .. '\n\n'
  for k = 1, 2 do
    local e = d['Positive Examples'][k]
    head = head .. 'Positive Example ' .. k .. ' -\nInput: ' .. e.input .. '\nOutput: ' .. e.output .. '\n\n'
  end
  local task_fit = 0
  for _, x in ipairs(d.Instances) do
    local n = #tok:encode(head .. 'Now complete the following example -\nInput: ' .. x.input .. '\nOutput:')
      + #tok:encode(' ' .. x.output[1]) + 1
    if n <= 128 then fit, task_fit = fit + 1, task_fit + 1 end
    n_all = n_all + 1
  end
  check(task_fit >= #d.Instances / 2, name .. ': most prompts exceed 128 tokens')
end
check(fit / n_all >= 0.95, string.format('only %.1f%% of the prompts fit 128 tokens', 100 * fit / n_all))
print(string.format('prompts (tk, 2 demonstrations) within 128 tokens: %.1f%%', 100 * fit / n_all))

-- ---- mtt.tasks reads the collection: a folder, and a split list that finds its files next to it ----
local loaded = mtt.tasks.load(out)
check(#loaded == #names, 'mtt.tasks.load(folder) gave ' .. #loaded .. ' tasks')
for i, t in ipairs(loaded) do
  local d = tasks[names[i]]
  check(t.name == names[i], 'mtt.tasks.load: task ' .. i .. ' is ' .. tostring(t.name))
  check(t.metric == d.Metric, t.name .. ': metric ' .. tostring(t.metric))
  check(#t.instances == #d.Instances, t.name .. ': instances')
  if d['Answer Options'] then -- (mtt.tasks may also infer options for other tasks)
    check(t.options and table.concat(t.options, '\n') == table.concat(d['Answer Options'], '\n'), t.name .. ': options')
  end
end
local held = mtt.tasks.load(out .. '/test_tasks.txt')
check(#held == #lists.test and held[1].name == lists.test[1], 'mtt.tasks.load(test_tasks.txt)')

-- the example Lua task specs in tasks/
local vowels = mtt.tasks.load('tasks/example_count_vowels.lua')[1]
check(vowels.name == 'example_count_vowels' and #vowels.instances == 200 and vowels.metric == 'exact_match',
  'tasks/example_count_vowels.lua')
for _, x in ipairs(vowels.instances) do
  local _, n = x.input:gsub('[aeiou]', '')
  check(x.outputs[1] == tostring(n), 'example_count_vowels: ' .. x.input .. ' -> ' .. x.outputs[1])
end
local opp = mtt.tasks.load('tasks/example_opposites.lua')[1]
check(opp.name == 'example_opposites' and #opp.instances == 6 and opp.metric == 'acc' and #opp.options == 2,
  'tasks/example_opposites.lua')

os.execute('rm -rf ' .. out .. ' ' .. tmp .. '-tasks2 ' .. tmp .. '.log')
checker.done(string.format('(%d s)', os.time() - wall0))
