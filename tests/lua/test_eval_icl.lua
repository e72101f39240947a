-- test_eval_icl.lua: mtt.eval.icl and mtt.eval.score.
--   1. a model whose log-likelihoods are known (a bigram table: the logits at a position are
--      the log-probabilities of a hand-written table row for the token there): loss, acc and
--      acc_norm equal the values computed by hand from the table, including a case where acc
--      and acc_norm pick different options because of length normalization; greedy output
--      and exact match as the table dictates;
--   2. greedy generation stops at the end of text, at stop strings (cut before them) and at
--      max_new_tokens; with a GPT, the KV-cache path gives the ids of a full forward per token;
--   3. with a real GPT: the ICL loss of one instance equals the model's own masked
--      cross-entropy on it; batched scoring equals one-by-one (1e-5); prompts longer than the
--      model's positions are truncated, not an error;
--   4. demonstrations: k drawn from train, never the evaluated instance, the same on every
--      run, nested over k; per-sample logs; mean rows; option errors.
local mtt = require 'mtt'
-- one thread: the models here are tiny, and OpenMP's overhead on a busy 2-core machine is
-- larger than the work (a fine-tuning step takes 2 ms on one thread, 16 ms CPU on two)
mtt.threads(1)
local cjson = require('cjson').new()
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')

local checker = testlib.checker('test_eval_icl')
local check, near = checker.check, testlib.near
local work = testlib.tmpdir()

-- prompts and tokens: mtt.tasks.encode ('exemplars': "Input: x\nOutput: y\n\n" per
-- demonstration, then "Input: x\nOutput:"; target ' ' .. output, then end of text)

-- ---- a character tokenizer: id = byte (2..127), except 'zzz' = one token (id 1), so that
-- an option's length in bytes and in tokens differ; end of text = 0 ----
local chartok = { eot_id = 0, vocab_size = 128 }
function chartok:encode(s)
  s = s:gsub('zzz', '\1')
  local t = {}
  for i = 1, #s do t[i] = s:byte(i) end
  return t
end
function chartok:decode(ids)
  local t = {}
  for _, id in ipairs(ids) do
    if id == 1 then t[#t + 1] = 'zzz' elseif id ~= 0 then t[#t + 1] = string.char(id) end
  end
  return table.concat(t)
end

-- ---- 1. the bigram model ----
local V = 128
local rows = {} -- rows[prev char] = {next char -> p}; the rest of each row uniform
local function row(prev, probs) rows[prev] = probs end
row(':', { [' '] = 0.5 })
row(' ', { x = 0.3, y = 0.2 })
row('x', { ['\0'] = 0.6 })
row('y', { ['\1'] = 0.3 }) -- 'zzz'
row('\1', { ['\0'] = 0.4 })
row('a', { b = 0.9 })
row('b', { ['\n'] = 0.9 })
row('\n', { c = 0.9 })
row('c', { ['\0'] = 0.9 })
-- P(next | prev) as the model will have it
local function P(prev, nxt)
  local r = rows[prev]
  if not r then return 1 / V end
  if r[nxt] then return r[nxt] end
  local used, n = 0, 0
  for _, p in pairs(r) do used, n = used + p, n + 1 end
  return (1 - used) / (V - n)
end
local logp = {}
for a = 0, V - 1 do
  logp[a + 1] = {}
  for b = 0, V - 1 do logp[a + 1][b + 1] = math.log(P(string.char(a), string.char(b))) end
end
local W = mtt.tensor(logp, { dtype = 'f64' }):float()
local bigram = setmetatable({ calls = 0 }, { __call = function(self, idx)
  self.calls = self.calls + 1
  return mtt.F.embedding(idx, W) -- [B, T, V]: the row of each input token
end })
bigram.config = { n_positions = 256 }

local function inst(id, input, output) return { id = id, input = input, outputs = { output } } end
local choice_task = {
  name = 'choose', metric = 'acc', options = { 'x', 'yzzz' },
  train = { inst('t1', 'p', 'x'), inst('t2', 'q', 'yzzz'), inst('t3', 'r', 'x') },
  test = { inst('e1', 'u', 'x'), inst('e2', 'v', 'yzzz'), inst('e3', 'w', 'yzzz') },
}
choice_task.instances = {}
for _, l in ipairs({ choice_task.train, choice_task.test }) do
  for _, i in ipairs(l) do choice_task.instances[#choice_task.instances + 1] = i end
end

do
  local L = math.log
  -- by hand: the prompt ends with ':', the target is ' ' .. option (then end of text)
  local sx = L(0.5) + L(0.3)          -- ' x': 2 bytes, 2 tokens
  local sy = L(0.5) + L(0.2) + L(0.3) -- ' yzzz': 5 bytes, 3 tokens
  -- acc picks x; per byte yzzz wins; per token x would win again (so bytes are what counts)
  check(sx > sy and sx / 2 < sy / 5 and sx / 2 > sy / 3, 'the hand example has acc and acc_norm disagree')
  local acc = 1 / 3      -- picks x: right for e1 only
  local acc_norm = 2 / 3 -- picks yzzz: right for e2, e3
  local nll_x = -(sx + L(0.6)) / 3
  local nll_y = -(sy + L(0.4)) / 4
  local loss = (nll_x + 2 * nll_y) / 3
  local samples = work .. '/samples.jsonl'
  local res = mtt.eval.icl{ model = bigram, tokenizer = chartok, tasks = { choice_task }, k = 0, seed = 1,
    samples = samples, max_new_tokens = 8 }
  local got = {}
  for _, r in ipairs(res) do
    if r.task == 'choose' then got[r.metric] = r end
  end
  check(got.acc and near(got.acc.value, acc, 1e-12), 'acc ' .. tostring(got.acc and got.acc.value) .. ' vs ' .. acc)
  check(got.acc_norm and near(got.acc_norm.value, acc_norm, 1e-12),
    'acc_norm ' .. tostring(got.acc_norm and got.acc_norm.value) .. ' vs ' .. acc_norm)
  check(got.loss and near(got.loss.value, loss, 1e-5), 'loss ' .. tostring(got.loss and got.loss.value) .. ' vs ' .. loss)
  -- greedy: ':' -> ' ' -> 'x' -> end of text, so the output is "x" everywhere
  check(got.exact_match and near(got.exact_match.value, 1 / 3, 1e-12), 'exact_match ' .. tostring(got.exact_match and got.exact_match.value))
  check(got.rouge_l and near(got.rouge_l.value, 1 / 3, 1e-12), 'rouge_l')
  check(got.loss and got.loss.n == 3 and got.loss.k == 0 and got.loss.seed == 1, 'row fields n, k, seed')
  local lines = {}
  for l in io.lines(samples) do lines[#lines + 1] = cjson.decode(l) end
  check(#lines == 3, 'one sample line per instance, got ' .. #lines)
  local s2 = lines[2] or { scores = {} }
  check(s2.id == 'e2' and s2.output == 'x' and s2.target == ' yzzz' and s2.scores.acc == 0 and s2.scores.acc_norm == 1
    and s2.scores.choice == 'x' and s2.scores.choice_norm == 'yzzz',
    'sample row of e2: ' .. cjson.encode(s2))
  check(type(s2.prompt) == 'string' and s2.prompt:sub(-7) == 'Output:' and s2.prompt:find('v', 1, true),
    'sample prompt ends with Output: and holds the input')
  check(near(s2.scores.loss, nll_y, 1e-5), 'per-sample loss')
  local star = {}
  for _, r in ipairs(res) do if r.task == '*' then star[r.metric] = r end end
  check(star.acc and star.acc.value == got.acc.value and star.acc.n == 1, 'mean row over one task')
  -- scores = {'loss'} only: no acc or generation rows, and no generation calls
  local before = bigram.calls
  local only = mtt.eval.icl{ model = bigram, tokenizer = chartok, tasks = { choice_task }, scores = { 'loss' } }
  check(#only == 2 and only[1].metric == 'loss' and only[2].task == '*', 'scores = {loss}: 2 rows, got ' .. #only)
  check(bigram.calls - before == 1, 'loss only: one batched forward for 3 instances, got ' .. (bigram.calls - before))
end

-- ---- 2. generation and stop strings ----
do
  local g = mtt.eval.score.generate
  local text, ids, why = g(bigram, chartok, { 97 }, { max_new_tokens = 10 }) -- 'a'
  check(text == 'b\nc' and why == 'eot' and #ids == 3, 'no stop strings: b\\nc then eot, got ' .. ('%q %s'):format(text, why))
  text, ids, why = g(bigram, chartok, { 97 }, { max_new_tokens = 10, stop = { '\n' } })
  check(text == 'b' and why == 'stop', 'stop at \\n: ' .. ('%q %s'):format(text, why))
  text, _, why = g(bigram, chartok, { 97 }, { max_new_tokens = 10, stop = { 'zz', '\nc' } })
  check(text == 'b' and why == 'stop', 'multi-char stop string: ' .. ('%q %s'):format(text, why))
  text, _, why = g(bigram, chartok, { 97 }, { max_new_tokens = 2 })
  check(text == 'b\n' and why == 'length', 'max_new_tokens: ' .. ('%q %s'):format(text, why))
  local ok, err = pcall(g, bigram, chartok, { 97 }, { max_new_token = 2 })
  check(not ok and tostring(err):find('max_new_token', 1, true) and tostring(err):find('accepted'), 'misspelt option: ' .. tostring(err))
end

-- ---- 3. a real GPT ----
local texts = {}
for i = 1, 40 do
  texts[#texts + 1] = string.format('Input: the number %d is %s\nOutput: %s\n\n', i, i % 2 == 0 and 'even' or 'odd',
    i % 2 == 0 and 'even' or 'odd')
end
local tok = mtt.tokenizer.train{ texts = texts, vocab_size = 320 }
mtt.manual_seed(7)
local gpt = mtt.nn.GPT{ vocab_size = tok.vocab_size, n_positions = 48, n_embd = 32, n_layer = 2, n_head = 2,
  resid_pdrop = 0, embd_pdrop = 0, attn_pdrop = 0 }
local parity = { name = 'parity', metric = 'acc', options = { 'even', 'odd' }, train = {}, test = {}, instances = {} }
for i = 1, 30 do
  local it = inst('n' .. i, 'the number ' .. i .. ' is', i % 2 == 0 and 'even' or 'odd')
  parity.instances[i] = it
  if i <= 20 then parity.train[#parity.train + 1] = it else parity.test[#parity.test + 1] = it end
end
-- an instance much longer than the model's 48 positions
parity.test[#parity.test + 1] = inst('long', string.rep('very ', 40) .. 'long 31 is', 'odd')

do
  -- loss of one instance == the model's masked cross-entropy on it
  local e = require('mtt.tasks').encode(tok, parity, parity.test[1], { format = 'exemplars', k = 0, max_len = 48 })
  local idx, tgt = {}, {}
  for t = 1, #e.ids - 1 do
    idx[t] = e.ids[t]
    tgt[t] = (t + 1 >= e.target_start) and e.ids[t + 1] or -100
  end
  local _, ce = gpt(mtt.tensor({ idx }, { dtype = 'i32' }), mtt.tensor({ tgt }, { dtype = 'i32' }), { ignore_index = -100 })
  local one = { name = 'one', metric = 'rouge_l', train = parity.train, test = { parity.test[1] }, instances = parity.instances }
  local r = mtt.eval.icl{ model = gpt, tokenizer = tok, tasks = { one }, k = 0, scores = { 'loss' } }
  check(near(r[1].value, ce:item(), 1e-5), string.format('ICL loss %.7f vs cross-entropy %.7f', r[1].value, ce:item()))
  check(gpt.training, 'the model is back in training mode after the evaluation')
end

do
  -- batched == one by one
  local seqs = {}
  for i, it in ipairs(parity.test) do
    for _, opt in ipairs({ 'even', 'odd', 'neither even nor odd' }) do
      local e = require('mtt.tasks').encode(tok, parity, it, { k = math.min(i - 1, 3), demos = { parity.train[1], parity.train[2], parity.train[3] },
        format = 'exemplars', max_len = 48, output = opt })
      seqs[#seqs + 1] = { ids = e.ids, from = e.target_start }
    end
  end
  local a = mtt.eval.score.loglik(gpt, seqs, { batch_size = 7 })
  local b = mtt.eval.score.loglik(gpt, seqs, { batch_size = 1 })
  local worst, lens = 0, {}
  for i = 1, #seqs do
    worst = math.max(worst, math.abs(a[i].logprob - b[i].logprob))
    check(a[i].n == b[i].n and a[i].n == #seqs[i].ids - seqs[i].from + 1, 'token counts')
    lens[#seqs[i].ids] = true
  end
  local nl = 0
  for _ in pairs(lens) do nl = nl + 1 end
  check(nl >= 3, 'the sequences have different lengths (padding is exercised)')
  check(worst <= 1e-5, string.format('batched vs one by one: max |diff| %.3g', worst))
  print(string.format('batched vs one-by-one log-likelihoods over %d sequences: max |diff| %.3g', #seqs, worst))
  -- the prompt once through the KV cache, then the continuation == the padded batch
  local pworst, cache = 0, gpt:new_cache(1, 48)
  mtt.no_grad(function()
    gpt:eval()
    for i, sq in ipairs(seqs) do
      local prompt, cont = {}, {}
      for j = 1, #sq.ids do
        if j < sq.from then prompt[#prompt + 1] = sq.ids[j] else cont[#cont + 1] = sq.ids[j] end
      end
      local r = mtt.eval.score.prefix(gpt, prompt, cache):loglik(cont)
      check(r.n == b[i].n, 'prefix token count')
      pworst = math.max(pworst, math.abs(r.logprob - b[i].logprob))
    end
    gpt:train()
  end)
  check(pworst <= 1e-5, string.format('KV-cache prefix vs padded batch: max |diff| %.3g', pworst))
  print(string.format('KV-cache prefix vs padded batch: max |diff| %.3g', pworst))
  -- icl through the prefix path (options, generation) vs the padded path (loss only)
  local via_prefix = mtt.eval.icl{ model = gpt, tokenizer = tok, tasks = { parity }, k = 1, seed = 2, max_new_tokens = 4 }
  local via_batch = mtt.eval.icl{ model = gpt, tokenizer = tok, tasks = { parity }, k = 1, seed = 2, scores = { 'loss' } }
  check(via_prefix[1].metric == 'loss' and near(via_prefix[1].value, via_batch[1].value, 1e-5),
    string.format('icl loss via the prefix %.7f vs padded batches %.7f', via_prefix[1].value, via_batch[1].value))
  -- and every metric against the same model without a cache (padded batches, full forwards)
  local plain = setmetatable({ config = gpt.config }, { __call = function(_, idx) return (gpt(idx)) end })
  local via_plain = mtt.eval.icl{ model = plain, tokenizer = tok, tasks = { parity }, k = 1, seed = 2, max_new_tokens = 4 }
  check(#via_plain == #via_prefix, 'same rows with and without the cache')
  for i, r in ipairs(via_plain) do
    check(near(r.value, via_prefix[i].value, 1e-5), string.format('%s with cache %.7f, without %.7f', r.metric,
      via_prefix[i].value, r.value))
  end
  -- the whole evaluation, batched vs not
  local r1 = mtt.eval.icl{ model = gpt, tokenizer = tok, tasks = { parity }, k = { 0, 2 }, seed = 3, batch_size = 1, max_new_tokens = 6 }
  local r2 = mtt.eval.icl{ model = gpt, tokenizer = tok, tasks = { parity }, k = { 0, 2 }, seed = 3, batch_size = 32, max_new_tokens = 6 }
  check(#r1 == #r2 and #r1 == 20, 'rows: 2 k x 5 metrics x (task + mean), got ' .. #r1)
  for i = 1, math.min(#r1, #r2) do
    check(r1[i].metric == r2[i].metric and near(r1[i].value, r2[i].value, 1e-5),
      string.format('icl row %d (%s k=%s): %s vs %s', i, r1[i].metric, r1[i].k, r1[i].value, r2[i].value))
  end
end

do
  -- generation through the KV cache == a full forward per token
  local plain = setmetatable({ config = gpt.config }, { __call = function(_, idx) return (gpt(idx)) end })
  local prompt = tok:encode('Input: the number 12 is\nOutput:')
  local t1, ids1 = mtt.eval.score.generate(gpt, tok, prompt, { max_new_tokens = 12 })
  local t2, ids2 = mtt.eval.score.generate(plain, tok, prompt, { max_new_tokens = 12 })
  check(t1 == t2 and #ids1 == #ids2, ('cached vs full forward generation: %q vs %q'):format(t1, t2))
  local ok, err = pcall(mtt.eval.score.generate, gpt, tok, prompt, { max_new_tokens = 48 })
  check(not ok and tostring(err):find('positions'), 'prompt + max_new_tokens beyond n_positions is an error: ' .. tostring(err))
end

do
  -- demonstrations
  local samples = work .. '/demos.jsonl'
  mtt.eval.icl{ model = gpt, tokenizer = tok, tasks = { parity }, k = { 1, 3 }, seed = 5, samples = samples,
    scores = { 'loss' }, max_instances = 10 }
  local again = work .. '/demos2.jsonl'
  mtt.eval.icl{ model = gpt, tokenizer = tok, tasks = { parity }, k = { 1, 3 }, seed = 5, samples = again,
    scores = { 'loss' }, max_instances = 10 }
  local function read(p)
    local f = assert(io.open(p)); local s = f:read('*a'); f:close(); return s
  end
  check(read(samples) == read(again), 'the same demonstrations and scores on a second run')
  local by = {}
  for l in io.lines(samples) do
    local r = cjson.decode(l)
    by[r.k .. ':' .. r.id] = r
    local shown = 0
    for _, t in ipairs(parity.train) do
      if r.prompt:find(t.input .. '\n', 1, true) then shown = shown + 1 end
    end
    check(shown == r.k, string.format('%s k=%d: %d train inputs in the prompt', r.id, r.k, shown))
    local own = parity.test[tonumber(r.id:match('%d+')) - 20]
    local _, count = r.prompt:gsub(own.input:gsub('%p', '%%%0'), '')
    check(count == 1, r.id .. ': the evaluated instance appears once (never as a demonstration)')
  end
  -- 1-shot's demonstration is the first of 3-shot's
  for i = 21, 30 do
    local p1, p3 = by['1:n' .. i], by['3:n' .. i]
    if check(p1 and p3, 'samples for n' .. i) then
      local first = p1.prompt:match('(the number %d+ is)\n')
      check(first and p3.prompt:find(first .. '\n', 1, true), 'nested demonstrations for n' .. i)
    end
  end
  -- a split that (against the rules) holds the evaluated instance in train too: it is still
  -- never its own demonstration
  local shared = { name = 'shared', metric = 'rouge_l', train = { inst('s1', 'aaa', 'x'), inst('s2', 'bbb', 'x'),
    inst('s3', 'ccc', 'x'), inst('s4', 'ddd', 'x') } }
  shared.test, shared.instances = { shared.train[1], shared.train[3] }, shared.train
  local sp = work .. '/shared.jsonl'
  for seed = 1, 3 do
    mtt.eval.icl{ model = bigram, tokenizer = chartok, tasks = { shared }, k = 3, seed = seed, samples = sp, scores = { 'loss' } }
    for l in io.lines(sp) do
      local r = cjson.decode(l)
      for _, t in ipairs(shared.train) do
        local _, c = r.prompt:gsub(t.input, '')
        check(c == 1, string.format('seed %d %s: %s appears %d times (want once: the 3 others as demonstrations)',
          seed, r.id, t.input, c))
      end
    end
  end
  -- the rng never gives an excluded item, and its draws depend on the key only
  local rng = mtt.eval.rng
  local list = {}
  for i = 1, 50 do list[i] = i end
  local a = rng.new(1, 'task', 'x'):sample(list, 49, function(v) return v == 7 end)
  local b = rng.new(1, 'task', 'x'):sample(list, 49, function(v) return v == 7 end)
  local seen = {}
  for i, v in ipairs(a) do seen[v] = true; check(v == b[i], 'rng reproducible') end
  check(#a == 49 and not seen[7], 'sample leaves the excluded item out')
  check(rng.key(1, 'ab') ~= rng.key(1, 'a', 'b') and rng.key(1) == rng.key(1.0), 'key separates parts')
  check(rng.key('a') == 0xe40c292c, string.format('FNV-1a("a") = %08x', rng.key('a')))
end

do
  -- truncation: the 'long' instance is scored (the prompt cut to the positions)
  local r = mtt.eval.icl{ model = gpt, tokenizer = tok, tasks = { { name = 'long', metric = 'acc', options = { 'even', 'odd' },
    train = parity.train, test = { parity.test[#parity.test] }, instances = parity.instances } }, k = 2, max_new_tokens = 8 }
  check(#r == 10 and r[1].value == r[1].value, 'a prompt longer than the model is truncated and scored')
  -- errors name the option
  local ok, err = pcall(mtt.eval.icl, { model = gpt, tokenizer = tok, tasks = { parity }, kk = 1 })
  check(not ok and tostring(err):find("'kk'"), 'unknown option named: ' .. tostring(err))
  ok, err = pcall(mtt.eval.icl, { model = gpt, tokenizer = tok, tasks = { parity }, scores = { 'los' } })
  check(not ok and tostring(err):find('los', 1, true), 'unknown score named: ' .. tostring(err))
end

testlib.rmdir(work)
checker.done()
