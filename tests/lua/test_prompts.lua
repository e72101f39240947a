-- test_prompts.lua: prompt encodings and their tokens (lua/mtt/tasks/prompt.lua).
--   1. The exact text of each format ('tk', 'id', 'exemplars'), pinned for a small task and for
--      a real NIv2 task (the examples shown in lua/mtt/README.md).
--   2. Exemplar demonstrations: from task.train, never the instance itself (by id), a function
--      of (seed, task, instance) only; opts.demos replaces them.
--   3. Tokens: ids = encode(prompt) .. encode(target) .. eot, target_start at the first target
--      token, special-token text encoded as text; each truncation stage (demonstrations last
--      first, input end, definition end, target end) checked against an encoding built here
--      from the pieces; errors.
--   4. encode_many equals encode one by one; timing over all instances of the 28 tasks.
-- Run: mtt run tests/lua/test_prompts.lua (from the repository root).
local mtt = require 'mtt'
local tasks = mtt.tasks
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')

local NIV2 = testlib.niv2_dir('test_prompts')
local checker = testlib.checker('test_prompts', { stop = true })
local check, expect_error = checker.check, checker.expect_error
local function eq_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end
local function cat(...)
  local out = {}
  for _, l in ipairs({ ... }) do for _, v in ipairs(l) do out[#out + 1] = v end end
  return out
end

-- ---- 1. exact text ----
local toy = tasks.define {
  name = 'toy_upper', definition = 'Write the word in capital letters.', categories = { 'Toy' },
  positive_examples = { { input = 'cat', output = 'CAT', explanation = 'all caps' }, { input = 'dog', output = 'DOG' },
    { input = 'owl', output = 'OWL' } },
  instances = { { input = 'red', output = 'RED' }, { input = 'blue', output = 'BLUE' }, { input = 'green', output = 'GREEN' },
    { input = 'pink', output = 'PINK' }, { input = 'gray', output = 'GRAY' }, { input = 'gold', output = 'GOLD' },
    { input = 'teal', outputs = { 'TEAL', 'Teal' } }, { input = 'navy', output = 'NAVY' } },
}
local inst = toy.instances[1]
local p, tgt, nd = tasks.prompt(toy, inst, { format = 'tk', k = 2 })
check(p == 'Definition: Write the word in capital letters.\n\n' ..
  'Positive Example 1 -\nInput: cat\nOutput: CAT\n\n' ..
  'Positive Example 2 -\nInput: dog\nOutput: DOG\n\n' ..
  'Now complete the following example -\nInput: red\nOutput:', 'tk k=2: %q', p)
check(tgt == ' RED' and nd == 2, 'tk target %q, n_demos %d', tgt, nd)
p = tasks.prompt(toy, inst, { format = 'tk' })
check(p == 'Definition: Write the word in capital letters.\n\nNow complete the following example -\nInput: red\nOutput:',
  'tk k=0: %q', p)
p, tgt, nd = tasks.prompt(toy, inst, { format = 'tk', k = 9 })
check(nd == 3 and p:find('Positive Example 3 -\nInput: owl\nOutput: OWL\n\nNow', 1, true), 'tk k > #positive: all three')
p = tasks.prompt(toy, inst, { format = 'id' })
check(p == 'toy_upper\nInput: red\nOutput:', 'id: %q', p)
p = tasks.prompt(toy, inst, { format = 'exemplars' })
check(p == 'Input: red\nOutput:', 'exemplars k=0: %q', p)
local demos = { { input = 'a', output = 'A' }, { input = 'b', outputs = { 'B', 'bee' } } }
p = tasks.prompt(toy, inst, { format = 'exemplars', demos = demos })
check(p == 'Input: a\nOutput: A\n\nInput: b\nOutput: B\n\nInput: red\nOutput:', 'exemplars with demos: %q', p)
p = tasks.prompt(toy, inst, { format = 'id', demos = demos })
check(p == 'toy_upper\nInput: a\nOutput: A\n\nInput: b\nOutput: B\n\nInput: red\nOutput:', 'id with demos: %q', p)
p = tasks.prompt(toy, inst, { format = 'tk', demos = demos, k = 1 })
check(p == 'Definition: Write the word in capital letters.\n\nPositive Example 1 -\nInput: a\nOutput: A\n\n' ..
  'Positive Example 2 -\nInput: b\nOutput: B\n\nNow complete the following example -\nInput: red\nOutput:',
  'tk with demos (k ignored): %q', p)
p, tgt = tasks.prompt(toy, toy.instances[7], { format = 'id', output = 'Teal' })
check(tgt == ' Teal', 'output option: %q', tgt)
check(select(2, tasks.prompt(toy, toy.instances[7], { format = 'id' })) == ' TEAL', 'target = outputs[1]')
-- the default format is 'tk'
check(tasks.prompt(toy, inst) == tasks.prompt(toy, inst, { format = 'tk', k = 0 }), 'default format')

-- a real task: the README's examples
local cap = tasks.load(NIV2 .. '/task1146_country_capital.json')[1]
local first = cap.instances[1] -- Afghanistan -> Kabul (a test instance under the default split)
p, tgt = tasks.prompt(cap, first, { format = 'tk', k = 2 })
check(p == 'Definition: In this task, you are given a country name and you need to return the capital city of the given country\n\n' ..
  'Positive Example 1 -\nInput: United States\nOutput: Washington\n\n' ..
  'Positive Example 2 -\nInput: India\nOutput: New Delhi\n\n' ..
  'Now complete the following example -\nInput: Afghanistan\nOutput:', 'real tk: %q', p)
check(tgt == ' Kabul', 'real target %q', tgt)
p = tasks.prompt(cap, first, { format = 'id' })
check(p == 'task1146_country_capital\nInput: Afghanistan\nOutput:', 'real id: %q', p)
p = tasks.prompt(cap, first, { format = 'exemplars', k = 2, seed = 0 })
check(p == 'Input: Uruguay\nOutput: Montevideo\n\nInput: Ecuador\nOutput: Quito\n\nInput: Afghanistan\nOutput:',
  'real exemplars (seed 0): %q', p)

-- ---- 2. exemplar draws ----
-- a train instance asks for k = #train - 1 demonstrations: all the others, never itself
local tr = toy.train
check(#tr == 6, 'toy train size %d', #tr)
for _, x in ipairs(tr) do
  local pr, _, n = tasks.prompt(toy, x, { format = 'exemplars', k = 10 })
  check(n == 5, 'k > pool: %d demos', n)
  local seen = 0
  for _, y in ipairs(tr) do
    local line = 'Input: ' .. y.input .. '\nOutput: '
    if pr:find(line, 1, true) then seen = seen + 1 end
  end
  check(seen == 5 and not pr:find('Input: ' .. x.input .. '\nOutput: ' .. x.outputs[1], 1, true), 'demo pool for %s', x.input)
end
-- the same (seed, task, instance) gives the same demonstrations, whatever was asked before
local a1 = tasks.prompt(cap, first, { format = 'exemplars', k = 4, seed = 3 })
tasks.prompt(cap, cap.instances[2], { format = 'exemplars', k = 4, seed = 3 })
check(a1 == tasks.prompt(cap, first, { format = 'exemplars', k = 4, seed = 3 }), 'draw depends on call order')
check(a1 ~= tasks.prompt(cap, first, { format = 'exemplars', k = 4, seed = 4 }), 'seed does not change the draw')
check(a1 ~= tasks.prompt(cap, cap.instances[2], { format = 'exemplars', k = 4, seed = 3 }):gsub('Albania', 'Afghanistan'),
  'every instance gets the same draw')
-- demonstrations come from train only
local train_inputs = {}
for _, x in ipairs(cap.train) do train_inputs[x.input] = true end
local n_from_train, n_all = 0, 0
for _, x in ipairs(cap.test) do
  local pr = tasks.prompt(cap, x, { format = 'exemplars', k = 3, seed = 1 })
  for input in pr:gmatch('Input: ([^\n]*)\nOutput: ') do
    n_all = n_all + 1
    if train_inputs[input] then n_from_train = n_from_train + 1 end
  end
end
check(n_all == 3 * #cap.test and n_from_train == n_all, 'demos from train: %d of %d', n_from_train, n_all)

-- ---- 3. tokens ----
-- a small BPE trained on the task texts (deterministic), with <|endoftext|>
local texts = {}
for _, t in ipairs(tasks.load(NIV2)) do
  texts[#texts + 1] = t.definition
  for _, x in ipairs(t.instances) do texts[#texts + 1] = 'Input: ' .. x.input .. '\nOutput: ' .. x.outputs[1] end
end
local tok = mtt.tokenizer.train { texts = texts, vocab_size = 600 }
check(tok.eot_id ~= nil, 'tokenizer has an eot')
local SPLIT = { split_special_tokens = true }

local function expect_plain(task, x, o)
  local pr, tg, n = tasks.prompt(task, x, o)
  local e = tasks.encode(tok, task, x, o)
  local want = cat(tok:encode(pr, SPLIT), tok:encode(tg, SPLIT), { tok.eot_id })
  check(eq_list(e.ids, want), '%s: ids differ from encode(prompt) .. encode(target) .. eot', task.name)
  check(e.target_start == #tok:encode(pr, SPLIT) + 1 and e.n_prompt == e.target_start - 1, 'target_start')
  check(e.n_target == #e.ids - e.n_prompt and e.n_demos == n and e.truncated == false, 'n_target / n_demos')
  local tail = {}
  for j = e.target_start, #e.ids do tail[#tail + 1] = e.ids[j] end
  check(tok:decode(tail) == tg .. '<|endoftext|>', 'decoded target %q', tok:decode(tail))
  return e
end
for _, fmt in ipairs({ 'tk', 'id', 'exemplars' }) do
  for _, k in ipairs({ 0, 2 }) do
    for i = 1, 10 do expect_plain(cap, cap.instances[i], { format = fmt, k = k, seed = 5 }) end
  end
end
expect_plain(toy, toy.instances[7], { format = 'id', output = 'Teal' })
-- special-token text inside the data is plain text: the only eot is the last id
local sp = tasks.define { name = 'sp', instances = { { input = 'a <|endoftext|> b', output = 'x<|endoftext|>' } } }
local e = tasks.encode(tok, sp, sp.instances[1], { format = 'id' })
for j = 1, #e.ids - 1 do check(e.ids[j] ~= tok.eot_id, 'eot inside the sequence at %d', j) end
check(e.ids[#e.ids] == tok.eot_id, 'the sequence ends with eot')

-- truncation
local x = cap.instances[5]
local o = { format = 'exemplars', k = 3, seed = 2 }
local full = tasks.encode(tok, cap, x, o)
check(#tasks.encode(tok, cap, x, { format = 'exemplars', k = 3, seed = 2, max_len = #full.ids }).ids == #full.ids,
  'max_len = length: unchanged')
-- (1) demonstrations, last first: equals the prompt built with the first n demos
local _, _, n3 = tasks.prompt(cap, x, o)
check(n3 == 3, 'three demos')
local pr3 = tasks.prompt(cap, x, o)
local demo_list = {}
for input, out in pr3:gmatch('Input: ([^\n]*)\nOutput: ([^\n]*)\n\n') do demo_list[#demo_list + 1] = { input = input, output = out } end
check(#demo_list == 3, 'demos parsed back')
local e2 = tasks.encode(tok, cap, x, { format = 'exemplars', k = 3, seed = 2, max_len = #full.ids - 1 })
local want2 = tasks.encode(tok, cap, x, { format = 'exemplars', demos = { demo_list[1], demo_list[2] } })
check(e2.n_demos == 2 and eq_list(e2.ids, want2.ids) and not e2.truncated, 'max_len - 1 drops the last demo')
local e0 = tasks.encode(tok, cap, x, { format = 'exemplars', k = 0 })
local e1 = tasks.encode(tok, cap, x, { format = 'exemplars', k = 3, seed = 2, max_len = #e0.ids })
check(e1.n_demos == 0 and eq_list(e1.ids, e0.ids), 'all demos dropped when only the bare prompt fits')
-- (2) the input's end: pieces "Input:" | " " .. input (cut) | "\nOutput:" | target | eot
local long = tasks.define { name = 'long_in', definition = 'Repeat the first word.',
  instances = { { input = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda', output = 'alpha' } } }
local li = long.instances[1]
local in_ids, head, tail2 = tok:encode(' ' .. li.input, SPLIT), tok:encode('Input:', SPLIT), tok:encode('\nOutput:', SPLIT)
local tg = tok:encode(' alpha', SPLIT)
local plain = tasks.encode(tok, long, li, { format = 'exemplars' })
local max_len = #plain.ids - 3
local et = tasks.encode(tok, long, li, { format = 'exemplars', max_len = max_len })
local keep = max_len - #head - #tail2 - #tg - 1
local want_ids = cat(head, { unpack(in_ids, 1, keep) }, tail2, tg, { tok.eot_id })
check(#et.ids == max_len and eq_list(et.ids, want_ids) and et.truncated, 'input cut: %d ids', #et.ids)
check(tok:decode({ unpack(et.ids, 1, et.n_prompt) }):find('^Input: alpha beta.*\nOutput:$'), 'cut prompt keeps the start + Output:')
-- (3) tk: the definition's end goes after the whole input
local tkfull = tasks.encode(tok, long, li, { format = 'tk' })
local dhead, def_ids = tok:encode('Definition:', SPLIT), tok:encode(' ' .. long.definition, SPLIT)
local mid = tok:encode('\n\nNow complete the following example -\nInput:', SPLIT)
local frame = #dhead + #mid + #tail2
local ml = frame + 2 + #tg + 1 -- two definition tokens survive, no input
local ed = tasks.encode(tok, long, li, { format = 'tk', max_len = ml })
check(#tkfull.ids > ml and #ed.ids == ml and eq_list(ed.ids, cat(dhead, { def_ids[1], def_ids[2] }, mid, tail2, tg, { tok.eot_id })),
  'tk: definition cut after the input')
-- (4) the target's end (no eot then)
local lt = tasks.define { name = 'long_out', instances = { { input = 'x', output = 'one two three four five six seven eight nine ten' } } }
local lo = tok:encode(' ' .. lt.instances[1].outputs[1], SPLIT)
local eo = tasks.encode(tok, lt, lt.instances[1], { format = 'exemplars', max_len = #head + #tail2 + 3 })
check(eq_list(eo.ids, cat(head, tail2, { lo[1], lo[2], lo[3] })) and eo.n_target == 3 and eo.truncated, 'target cut, no eot')
expect_error('frame too long', { 'mtt.tasks.encode', "task 'long_out'", 'max_len = 4', 'fixed frame' }, tasks.encode, tok, lt,
  lt.instances[1], { format = 'exemplars', max_len = 4 })
-- every encoding of every instance fits max_len exactly when cut
local worst = 0
for _, fmt in ipairs({ 'tk', 'id', 'exemplars' }) do
  for i = 1, #cap.instances, 7 do
    local ee = tasks.encode(tok, cap, cap.instances[i], { format = fmt, k = 2, max_len = 48 })
    check(#ee.ids <= 48 and ee.target_start == ee.n_prompt + 1, 'max_len 48: %d ids', #ee.ids)
    worst = math.max(worst, #ee.ids)
  end
end
check(worst == 48, 'some encodings should hit max_len exactly')
-- errors
expect_error('bad format', { 'mtt.tasks.encode', "unknown format 'kshot'" }, tasks.encode, tok, toy, inst, { format = 'kshot' })
expect_error('bad option', { "unknown option 'max_length'" }, tasks.encode, tok, toy, inst, { max_length = 3 })
expect_error('bad k', { 'k must be an integer >= 0' }, tasks.prompt, toy, inst, { k = -1 })
expect_error('bad demos', { 'demos[1] needs input and output' }, tasks.prompt, toy, inst, { demos = { { input = 'a' } } })
expect_error('no eot', { 'no <|endoftext|>' }, tasks.encode, { encode = function() return {} end }, toy, inst)

-- ---- 4. encode_many and timing ----
local many = tasks.encode_many(tok, cap, cap.test, { format = 'exemplars', k = 2, max_len = 64 })
for i, xi in ipairs(cap.test) do
  check(eq_list(many[i].ids, tasks.encode(tok, cap, xi, { format = 'exemplars', k = 2, max_len = 64 }).ids), 'encode_many %d', i)
end
local all = tasks.load(NIV2)
local t0, n = os.clock(), 0
for _, t in ipairs(all) do
  local es = tasks.encode_many(tok, t, t.instances, { format = 'tk', k = 2, max_len = 256 })
  n = n + #es
end
local dt = os.clock() - t0
print(string.format('encoded %d instances (tk, k = 2, max_len 256) in %.2f s (%.0f / s)', n, dt, n / dt))

checker.done()
