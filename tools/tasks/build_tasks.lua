-- build_tasks.lua: builds mtt's shipped task collection (tasks/README.md) from Debian data packages
-- and generators, one Super-NaturalInstructions JSON file per task.
--
--   luajit tools/tasks/build_tasks.lua [OUT_DIR] [--docs]
--   (default OUT_DIR build/data/tasks; ./build.sh runs it at set-up)
--
-- Writes OUT_DIR/mtt001_<name>.json ... (NIv2 schema plus mtt's "Answer Options" and "Metric"),
-- OUT_DIR/train_tasks.txt and test_tasks.txt (the default split, so that a split list finds its
-- files next to it), OUT_DIR/TABLE.md (the README's task table) and OUT_DIR/MANIFEST (sha256,
-- bytes and name of every file). --docs also writes the table into tasks/README.md (between its
-- marker lines) and the split lists into tasks/splits/default/ (run it after changing a task).
-- Deterministic: sorted inputs, a PRNG seeded from each task's name, no clock; two builds give
-- byte-identical files. Plain LuaJIT + lua-cjson: no mtt module is needed.
-- The interpreter only: Debian 12's LuaJIT JIT miscompiles loads from a table constructor inside
-- a hot loop (upstream issues 980 and 994; freedict.lua's language filter, `ipairs({'English',
-- ...})`, lost half its look-ups in some builds; tests/lua/test_jit_safety.lua has the cases), and
-- the interpreter is as fast here (the work is string matching inside C functions).
if jit then jit.off() end

local dir = (arg and arg[0] or ''):match('^(.*)/[^/]*$') or '.'
local L = dofile(dir .. '/lib.lua')

local out_dir, docs = 'build/data/tasks', false
for _, a in ipairs(arg or {}) do
  if a == '--docs' then
    docs = true
  elseif a:sub(1, 2) == '--' then
    io.stderr:write('build_tasks: unknown option ' .. a .. ' (accepted: --docs)\n')
    os.exit(2)
  else
    out_dir = a
  end
end

-- The source families, in numbering order (a new family goes at the end so that existing task
-- numbers stay). Each file returns function(L) -> array of task specs (see finish() below).
local FAMILIES = { 'algorithmic', 'wordnet', 'isocodes', 'miscfiles', 'bible', 'cmudict', 'freedict', 'fortunes' }

-- The default held-out split (the study's "unseen tasks"): whole source families, whose
-- categories no training task shares (checked below).
local HELD_OUT = {
  ['generated-arithmetic'] = true, -- Mathematics
  cmudict = true,                  -- Phonetics
  freedict = true,                 -- Translation, Language Identification
  fortunes = true,                 -- Text Categorization
}

local MIN_INSTANCES, DEFAULT_CAP = 150, 500

-- finish(spec, number): the NIv2 document of one task. A spec has name, category, family,
-- source, package, license, definition, metric, pool ({input, outputs}), explain(input, output),
-- and optionally options, domains, reasoning, cap, max_input, max_output, languages
-- ({input, output}). Two or three positive examples and one negative example are drawn from the
-- pool (and not used as instances); the rest, shuffled, become the instances.
local function finish(spec, number)
  local name = string.format('mtt%03d_%s', number, spec.name)
  local max_in, max_out = spec.max_input or 100, spec.max_output or 60
  local pool, seen = {}, {}
  for _, p in ipairs(spec.pool) do
    local outs, have = {}, {} -- references without repeats, first kept
    for _, o in ipairs(p.outputs) do
      if not have[o] then have[o] = true; outs[#outs + 1] = o end
    end
    p = { input = p.input, outputs = outs }
    local ok = type(p.input) == 'string' and p.input ~= '' and #p.input <= max_in and L.valid_utf8(p.input)
      and #p.outputs > 0 and not seen[p.input]
    for _, o in ipairs(p.outputs) do
      ok = ok and type(o) == 'string' and o ~= '' and #o <= max_out and L.valid_utf8(o)
    end
    if ok then
      seen[p.input] = true
      pool[#pool + 1] = p
    end
  end
  -- pools come most useful first (common words first): keep what the task needs, then shuffle
  local cap = spec.cap or DEFAULT_CAP
  for i = #pool, cap + 5, -1 do pool[i] = nil end
  local r = L.rng('task:' .. spec.name)
  pool = r:shuffle(pool)
  if spec.options then -- answers must be options; positives show different labels
    local is_option = {}
    for _, o in ipairs(spec.options) do is_option[o] = true end
    for _, p in ipairs(pool) do
      if #p.outputs ~= 1 or not is_option[p.outputs[1]] then
        L.fail(string.format('%s: answer %q of %q is not an option', name, p.outputs[1], p.input))
      end
    end
  end
  local positives, used, labels = {}, {}, {}
  local n_pos = spec.options and math.min(3, #spec.options) or 2
  -- demonstrations no longer than the median item, so that prompts with them stay short
  local lens = {}
  for i, p in ipairs(pool) do lens[i] = #p.input + #p.outputs[1] end
  table.sort(lens)
  local median = lens[math.ceil(#lens / 2)] or 0
  for i, p in ipairs(pool) do
    if #positives == n_pos then break end
    if #p.input + #p.outputs[1] <= median and (not spec.options or not labels[p.outputs[1]]) then
      positives[#positives + 1] = L.object({ 'input', 'output', 'explanation' },
        { input = p.input, output = p.outputs[1], explanation = spec.explain(p.input, p.outputs[1]) })
      used[i], labels[p.outputs[1]] = true, true
    end
  end
  local rest = {}
  for i, p in ipairs(pool) do if not used[i] then rest[#rest + 1] = p end end
  -- the negative example: a wrong answer taken from another item (or another option)
  local neg = table.remove(rest, 1)
  local wrong
  local refs = {}
  for _, o in ipairs(neg.outputs) do refs[o] = true end
  for _, cand in ipairs(spec.options or {}) do if not refs[cand] then wrong = cand; break end end
  for _, p in ipairs(rest) do
    if wrong then break end
    if not refs[p.outputs[1]] then wrong = p.outputs[1] end
  end
  local negatives = { L.object({ 'input', 'output', 'explanation' }, { input = neg.input, output = wrong,
    explanation = string.format('"%s" is wrong. %s', wrong, spec.explain(neg.input, neg.outputs[1])) }) }
  local instances = {}
  for i = 1, math.min(cap, #rest) do
    instances[i] = L.object({ 'id', 'input', 'output' },
      { id = name .. '-' .. i, input = rest[i].input, output = rest[i].outputs })
  end
  if #instances < MIN_INSTANCES then
    L.fail(string.format('%s has %d instances (at least %d needed): is its source package complete?',
      name, #instances, MIN_INSTANCES))
  end
  local langs = spec.languages or { 'English', 'English' }
  local function list(x) return type(x) == 'table' and x or { x } end
  local urls = {}
  for pkg in spec.package:gmatch('[^, ]+') do
    if spec.package:match('^none') then urls = { 'https://github.com/mtt' } break end
    urls[#urls + 1] = 'https://packages.debian.org/bookworm/' .. pkg
  end
  local keys = { 'Contributors', 'Source', 'URL', 'Categories', 'Reasoning', 'Definition', 'Input_language',
    'Output_language', 'Instruction_language', 'Domains', 'Positive Examples', 'Negative Examples',
    'Instances', 'Instance License' }
  local doc = {
    Contributors = { 'mtt tools/tasks/build_tasks.lua' },
    Source = { spec.source },
    URL = urls,
    Categories = { spec.category },
    Reasoning = spec.reasoning or {},
    Definition = { spec.definition },
    Input_language = list(langs[1]), Output_language = list(langs[2]), Instruction_language = { 'English' },
    Domains = spec.domains or {},
    ['Positive Examples'] = positives,
    ['Negative Examples'] = negatives,
    Instances = instances,
    ['Instance License'] = { spec.license },
  }
  if spec.options then
    keys[#keys + 1] = 'Answer Options'
    doc['Answer Options'] = spec.options
  end
  keys[#keys + 1] = 'Metric'
  doc.Metric = spec.metric
  return name, L.json_document(keys, doc), #instances
end

-- ---- build ----
local t0 = os.clock()
local rows = {}
local number = 0
for _, fam in ipairs(FAMILIES) do
  local specs = dofile(dir .. '/' .. fam .. '.lua')(L)
  for _, spec in ipairs(specs) do
    number = number + 1
    local name, text, n = finish(spec, number)
    rows[#rows + 1] = { name = name, text = text, n = n, spec = spec, held_out = HELD_OUT[spec.family] or false }
  end
end

-- the split must not leak: no category or source family of a held-out task among training tasks
local train_cat, train_fam = {}, {}
for _, row in ipairs(rows) do
  if not row.held_out then train_cat[row.spec.category], train_fam[row.spec.family] = true, true end
end
for _, row in ipairs(rows) do
  if row.held_out and (train_cat[row.spec.category] or train_fam[row.spec.family]) then
    L.fail(string.format('held-out task %s shares category %q or family %q with a training task',
      row.name, row.spec.category, row.spec.family))
  end
end

local function write(path, text)
  local f = io.open(path, 'wb') or L.fail('cannot write ' .. path)
  f:write(text)
  f:close()
end

os.execute('mkdir -p ' .. L.shell_quote(out_dir))
-- stale task files of an earlier build (a renamed task) must not stay behind
os.execute('rm -f ' .. L.shell_quote(out_dir) .. '/mtt[0-9][0-9][0-9]_*.json')

local train, test = {}, {}
local table_lines = {
  '| Task | Category | Instances | Metric | Source | Package | Licence | Split |',
  '|---|---|---:|---|---|---|---|---|',
}
local cats, total = {}, 0
for _, row in ipairs(rows) do
  write(out_dir .. '/' .. row.name .. '.json', row.text)
  local list = row.held_out and test or train
  list[#list + 1] = row.name
  local s = row.spec
  table_lines[#table_lines + 1] = string.format('| %s | %s | %d | %s | %s | %s | %s | %s |', row.name, s.category,
    row.n, s.metric, s.source, s.package, s.license_short or s.license, row.held_out and 'test' or 'train')
  cats[s.category] = true
  total = total + row.n
end
local ncat = 0
for _ in pairs(cats) do ncat = ncat + 1 end
table.insert(table_lines, 1, string.format('%d tasks in %d categories, %d instances; default split: %d training tasks, %d held out.\n',
  #rows, ncat, total, #train, #test))
local train_text = table.concat(train, '\n') .. '\n'
local test_text = table.concat(test, '\n') .. '\n'
local table_text = table.concat(table_lines, '\n') .. '\n'
write(out_dir .. '/train_tasks.txt', train_text)
write(out_dir .. '/test_tasks.txt', test_text)
write(out_dir .. '/TABLE.md', table_text)

local manifest = {}
for _, row in ipairs(rows) do
  manifest[#manifest + 1] = string.format('%s  %d  %s.json', L.sha256(row.text), #row.text, row.name)
end
for _, f in ipairs({ { 'train_tasks.txt', train_text }, { 'test_tasks.txt', test_text }, { 'TABLE.md', table_text } }) do
  manifest[#manifest + 1] = string.format('%s  %d  %s', L.sha256(f[2]), #f[2], f[1])
end
write(out_dir .. '/MANIFEST', table.concat(manifest, '\n') .. '\n')

if docs then
  local root = dir .. '/../..'
  local readme_path = root .. '/tasks/README.md'
  local readme = L.read_file(readme_path) or L.fail('cannot read ' .. readme_path)
  local BEGIN, END = '<!-- BEGIN TASK TABLE', '<!-- END TASK TABLE -->'
  local a = readme:find(BEGIN, 1, true)
  local b = readme:find(END, 1, true)
  if not a or not b then L.fail(readme_path .. ' lacks the task table markers') end
  local line_end = readme:find('\n', a, true)
  write(readme_path, readme:sub(1, line_end) .. table_text .. readme:sub(b))
  os.execute('mkdir -p ' .. L.shell_quote(root .. '/tasks/splits/default'))
  write(root .. '/tasks/splits/default/train_tasks.txt', train_text)
  write(root .. '/tasks/splits/default/test_tasks.txt', test_text)
end

print(string.format('build_tasks: %d tasks (%d train, %d held out), %d categories, %d instances -> %s (%.1f s)',
  #rows, #train, #test, ncat, total, out_dir, os.clock() - t0))
