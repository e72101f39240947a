-- test_eval_transfer.lua: mtt.eval.transfer and mtt.eval.transfer_gap.
--   1. the original model is bitwise unchanged (every parameter byte compared) and gets no
--      gradients, after fine-tuning copies of it on several tasks;
--   2. results do not depend on task order: two orders give identical rows (exact equality),
--      which also shows that the scratch copy and the optimizer are fully reset between runs;
--      a scratch shared between calls gives the same rows as a fresh one;
--   3. fine-tuning works: on tasks with a constant answer, n = 8 examples and 30 steps lower the
--      test loss well below n = 0 and make rank classification right; n = 0 equals mtt.eval.icl
--      on the same prompts; 'exemplars' format runs;
--   4. transfer_gap on rows with known values; option errors.
local mtt = require 'mtt'
-- one thread: the models here are tiny, and OpenMP's overhead on a busy 2-core machine is
-- larger than the work (a fine-tuning step takes 2 ms on one thread, 16 ms CPU on two)
mtt.threads(1)
local ffi = require 'ffi'
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')

local checker = testlib.checker('test_eval_transfer')
local check, near = checker.check, testlib.near

-- ---- data: two tasks with one answer each (learnable in a few steps), one with options ----
local words = { 'apple', 'river', 'stone', 'cloud', 'green', 'table', 'music', 'light', 'paper', 'horse', 'glass',
  'bread', 'chair', 'water', 'sound', 'field', 'night', 'story', 'plant', 'money', 'train', 'heart', 'smile', 'dream' }
local function make_task(name, answer, options)
  local t = { name = name, metric = options and 'acc' or 'rouge_l', options = options, train = {}, test = {}, instances = {} }
  for i, w in ipairs(words) do
    local it = { id = name .. i, input = 'the word ' .. w, outputs = { answer } }
    t.instances[i] = it
    if i <= 16 then t.train[#t.train + 1] = it else t.test[#t.test + 1] = it end
  end
  return t
end
local yes = make_task('yes_task', 'yes', { 'yes', 'no' })
local blue = make_task('blue_task', 'blue sky')

local texts = {}
for _, w in ipairs(words) do texts[#texts + 1] = 'Input: the word ' .. w .. '\nOutput: yes no blue sky\n\n' end
local tok = mtt.tokenizer.train{ texts = texts, vocab_size = 300 }
mtt.manual_seed(11)
local model = mtt.nn.GPT{ vocab_size = tok.vocab_size, n_positions = 64, n_embd = 32, n_layer = 2, n_head = 2,
  resid_pdrop = 0, embd_pdrop = 0, attn_pdrop = 0 }

local function snapshot(m)
  local s = {}
  for _, np in ipairs(m:named_parameters()) do
    local t = np[2]:contiguous()
    s[np[1]] = ffi.string(t:data_ptr(), t:numel() * t:element_size())
  end
  return s
end
local before = snapshot(model)

local settings = { model = model, tokenizer = tok, n = { 0, 8 }, steps = 30, lr = 1e-2, batch_size = 4, format = 'id',
  seed = { 1, 2 }, max_instances = 6, max_new_tokens = 4 }
local function run(tasks, extra)
  local o = {}
  for k, v in pairs(settings) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  o.tasks = tasks
  return mtt.eval.transfer(o)
end

local t0 = os.clock()
local rows_ab = run({ yes, blue })
local elapsed = os.clock() - t0
local rows_ba = run({ blue, yes })
print(string.format('transfer: 2 tasks x 2 n x 2 seeds (4 fine-tunes of 30 steps, 8 scorings of 6 instances): %.2f s CPU',
  elapsed))

-- ---- 1. the original is untouched ----
do
  local after = snapshot(model)
  local same, count = true, 0
  for name, bytes in pairs(before) do
    count = count + 1
    if after[name] ~= bytes then same = false; print('changed: ' .. name) end
  end
  check(same and count > 0, 'every parameter of the original model is bitwise unchanged (' .. count .. ' tensors)')
  for _, p in ipairs(model:parameters()) do check(p.grad == nil, 'the original has no gradients') end
  check(model.training, 'the original model keeps its mode')
end

-- ---- 2. order independence ----
local function index(rows)
  local t = {}
  for _, r in ipairs(rows) do t[string.format('%s|%s|%s|%s', r.task, r.n, r.seed, r.metric)] = r end
  return t
end
do
  local a, b = index(rows_ab), index(rows_ba)
  local n = 0
  for key, r in pairs(a) do
    n = n + 1
    local s = b[key]
    check(s and s.value == r.value and s.train_loss == r.train_loss,
      string.format('%s: %s vs %s (train loss %s vs %s)', key, tostring(r.value), tostring(s and s.value),
        tostring(r.train_loss), tostring(s and s.train_loss)))
  end
  -- yes: loss, acc, acc_norm, em, rouge; blue: loss, em, rouge; per n and seed; then means
  check(n == (5 + 3) * 4 + 5 * 4, 'row count ' .. n)
  local again = run({ blue }, { scratch = mtt.eval.new_scratch(model) })
  for _, r in ipairs(again) do
    local s = a[string.format('%s|%s|%s|%s', r.task, r.n, r.seed, r.metric)]
    if r.task ~= '*' then check(s and s.value == r.value, 'a shared scratch gives the same rows: ' .. r.task .. ' ' .. r.metric) end
  end
end

-- ---- 3. fine-tuning helps; n = 0 is the model as it is ----
do
  local a = index(rows_ab)
  for _, seed in ipairs({ 1, 2 }) do
    for _, task in ipairs({ 'yes_task', 'blue_task' }) do
      local l0, l8 = a[task .. '|0|' .. seed .. '|loss'], a[task .. '|8|' .. seed .. '|loss']
      check(l0 and l8 and l8.value < 0.5 * l0.value,
        string.format('%s seed %d: test loss after 8 examples %.3f vs %.3f before', task, seed, l8 and l8.value or -1,
          l0 and l0.value or -1))
      check(l8 and l8.count == 6 and type(l8.train_loss) == 'number', 'count and train_loss fields')
      check(l0 and l0.train_loss == nil, 'n = 0 does not train')
    end
    local acc = a['yes_task|8|' .. seed .. '|acc']
    check(acc and acc.value == 1, 'yes_task acc after fine-tuning: ' .. tostring(acc and acc.value))
    local em = a['blue_task|8|' .. seed .. '|exact_match']
    print(string.format('seed %d: loss yes %.3f -> %.3f, blue %.3f -> %.3f; blue exact match %.2f', seed,
      a['yes_task|0|' .. seed .. '|loss'].value, a['yes_task|8|' .. seed .. '|loss'].value,
      a['blue_task|0|' .. seed .. '|loss'].value, a['blue_task|8|' .. seed .. '|loss'].value, em and em.value or -1))
  end
  -- two seeds draw different examples: different fine-tuned models
  check(a['yes_task|8|1|loss'].value ~= a['yes_task|8|2|loss'].value, 'seeds give different runs')
  local m = a['*|8|1|loss']
  check(m and near(m.value, (a['yes_task|8|1|loss'].value + a['blue_task|8|1|loss'].value) / 2, 1e-12) and m.count == 2,
    'mean row over tasks')
  -- n = 0 == icl with the same encoding
  local icl = mtt.eval.icl{ model = model, tokenizer = tok, tasks = { yes }, k = 0, format = 'id', seed = 1,
    max_instances = 6, max_new_tokens = 4 }
  for _, r in ipairs(icl) do
    if r.task == 'yes_task' then
      local t = a['yes_task|0|1|' .. r.metric]
      check(t and near(t.value, r.value, 1e-6), 'n = 0 equals icl for ' .. r.metric)
    end
  end
  -- the exemplar encoding: fine-tuning examples and test prompts carry demonstrations
  local ex = run({ yes }, { format = 'exemplars', k = 2, n = { 8 }, seed = 1 })
  local ex_loss = index(ex)['yes_task|8|1|loss']
  check(ex_loss and ex_loss.value < 0.5 * a['yes_task|0|1|loss'].value, 'exemplars format fine-tunes too')
end

-- ---- 4. transfer_gap and errors ----
do
  local tuned = { { task = 'a', n = 5, seed = 1, metric = 'rouge_l', value = 0.5 },
    { task = 'b', n = 5, seed = 1, metric = 'rouge_l', value = 0.25 },
    { task = 'c', n = 5, seed = 1, metric = 'rouge_l', value = 0.9 }, -- not in base: left out
    { task = '*', n = 5, seed = 1, metric = 'rouge_l', value = 0.55 } }
  local base = { { task = 'a', n = 5, seed = 1, metric = 'rouge_l', value = 0.25 },
    { task = 'b', n = 5, seed = 1, metric = 'rouge_l', value = 0.5 },
    { task = 'a', n = 10, seed = 1, metric = 'rouge_l', value = 0.1 } }
  local g = mtt.eval.transfer_gap(tuned, base)
  check(#g == 3, 'gap rows: 2 tasks + 1 mean, got ' .. #g)
  check(g[1].task == 'a' and g[1].gap == 0.25 and g[1].tuned == 0.5 and g[1].base == 0.25, 'gap of a')
  check(g[2].task == 'b' and g[2].gap == -0.25, 'gap of b')
  check(g[3] and g[3].task == '*' and g[3].gap == 0 and g[3].tuned == 0.375 and g[3].base == 0.375 and g[3].count == 2,
    'mean gap')
  local ok, err = pcall(mtt.eval.transfer, { model = model, tokenizer = tok, tasks = { yes }, format = 'tk' })
  check(not ok and tostring(err):find("'tk'"), 'format tk refused: ' .. tostring(err))
  ok, err = pcall(mtt.eval.transfer, { model = model, tokenizer = tok, tasks = { yes }, step = 3 })
  check(not ok and tostring(err):find("'step'") and tostring(err):find('accepted'), 'misspelt option: ' .. tostring(err))
  local gap_rows = mtt.eval.transfer_gap(rows_ab, rows_ba)
  for _, r in ipairs(gap_rows) do check(r.gap == 0, 'two orders: zero gap for ' .. r.task .. ' ' .. r.metric) end
end

checker.done()
