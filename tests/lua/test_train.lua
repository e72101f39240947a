-- test_train.lua: mtt.train against PyTorch, and its run folder.
--   1. schedules: warm-up and decay values at the points that define them;
--   2. options: a misspelt or missing option is an error that names it;
--   3. reference: a small model trained by mtt.train (grad accumulation, clipping that bites,
--      warm-up + cosine, AdamW with decay on 2-D weights only) and by the same loop written
--      in PyTorch from the same initial weights and batches: every loss and the final weights
--      must agree;
--   4. the run folder: config.json, metrics.jsonl (lr = the schedule, val_loss on eval steps),
--      checkpoints every ckpt_every and at the end, only keep_checkpoints of them kept;
--   5. stop and resume in one process: on_step returning false stops with a checkpoint, and the
--      resumed run logs bitwise the losses of an uninterrupted run (test_resume.lua does it
--      with SIGKILL);
--   6. the progress display: \r-redrawn line on a terminal, plain lines every log_every steps
--      otherwise;
--   7. end to end: tools/corpus/build_corpus.lua makes a small corpus from the Debian packages
--      (deterministic: twice the same bytes), recipes/pretrain.lua --quick trains on it, beats
--      the unigram baseline, and writes a base model that loads back (same weights as its last
--      checkpoint, same tokenizer).
local mtt = require 'mtt'
local F = mtt.F
local cjson = require 'cjson'
local metrics = mtt.train.metrics

local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')
local checker = testlib.checker('test_train')
local check = checker.check
local function approx(a, b, tol) return math.abs(a - b) <= tol * math.max(1, math.abs(b)) end

local tmp = os.getenv('TMPDIR') or '/tmp'
local work = string.format('%s/mtt_test_train_%d', tmp, io.open('/proc/self/stat'):read('*n')) -- by pid
os.execute("rm -rf '" .. work .. "' && mkdir -p '" .. work .. "'")

-- ---- a small model and data source written for this test ----
-- Embedding -> layer norm -> linear + GELU -> linear to the vocabulary: 2-D weights (decayed)
-- and 1-D gains and biases (not decayed), the calling convention of mtt.nn models.
local V, C, T = 23, 16, 12
local Tiny = {}
Tiny.__index = Tiny
Tiny.__call = function(self, idx, targets)
  local p = self.p
  local x = F.layer_norm(F.embedding(idx, p.wte), p.ln_w, p.ln_b)
  x = F.linear(F.linear(x, p.w1, p.b1):gelu(), p.w2, p.b2)
  local loss = targets and F.cross_entropy(x, targets) or nil
  return x, loss
end
local ORDER = { 'wte', 'ln_w', 'ln_b', 'w1', 'b1', 'w2', 'b2' }
local function tiny_model(seed)
  local g = mtt.Generator(seed)
  local function r(...) return (mtt.randn({ ... }, { generator = g }) * 0.3):detach():requires_grad() end
  return setmetatable({ mode = 'train', p = {
    wte = r(V, C), ln_w = (mtt.ones(C) + mtt.randn({ C }, { generator = g }) * 0.1):detach():requires_grad(),
    ln_b = r(C), w1 = r(C, C), b1 = r(C), w2 = r(V, C), b2 = r(V),
  } }, Tiny)
end
function Tiny:named_parameters()
  local l = {}
  for i, n in ipairs(ORDER) do l[i] = { n, self.p[n] } end
  return l
end
function Tiny:parameters()
  local l = {}
  for i, n in ipairs(ORDER) do l[i] = self.p[n] end
  return l
end
function Tiny:state_dict()
  local sd = {}
  for _, n in ipairs(ORDER) do sd[n] = self.p[n] end
  return sd
end
function Tiny:load_state_dict(sd)
  mtt.no_grad(function()
    for _, n in ipairs(ORDER) do self.p[n]:copy_(assert(sd[n], n)) end
  end)
end
function Tiny:train() self.mode = 'train' end
function Tiny:eval() self.mode = 'eval' end

-- Data: batches of a fixed token stream where token t+1 = (3 * token t + 1) mod V with some
-- noise, so a loss can fall; the cursor (one number per split) is its whole state.
local stream
do
  local g = mtt.Generator(99)
  local noise = mtt.randint(0, V, { 40000 }, { generator = g }):totable()
  local coin = mtt.randint(0, 10, { 40000 }, { generator = g }):totable()
  stream = { 0 }
  for i = 2, 40000 do stream[i] = coin[i] == 0 and noise[i] or (3 * stream[i - 1] + 1) % V end
end
local Data = {}
Data.__index = Data
local function fake_data() return setmetatable({ cursor = { train = 0, val = 0 }, block_size = T, n_tokens = #stream }, Data) end
function Data:batch(split, B)
  local base = split == 'train' and 0 or 30000
  local idx, tgt = {}, {}
  for b = 1, B do
    local start = base + ((self.cursor[split] * 7 + b * 13) % 9000) + 1
    idx[b], tgt[b] = {}, {}
    for t = 1, T do idx[b][t], tgt[b][t] = stream[start + t - 1], stream[start + t] end
  end
  self.cursor[split] = self.cursor[split] + 1
  return mtt.tensor(idx, { dtype = 'i32' }), mtt.tensor(tgt, { dtype = 'i32' })
end
function Data:state() return { train = self.cursor.train, val = self.cursor.val } end
function Data:set_state(s) self.cursor = { train = s.train, val = s.val } end

-- ---- 1. schedules ----
do
  local S = mtt.train.schedule
  local cos = S.make { lr = 1.0, min_lr = 0.1, warmup = 10, steps = 111, kind = 'cosine' }
  check(approx(cos(1), 0.1, 1e-12) and approx(cos(5), 0.5, 1e-12) and cos(10) == 1, 'warm-up is linear to lr')
  check(cos(11) == 1, 'decay starts at lr')
  check(approx(cos(61), 0.55, 1e-12), 'cosine midpoint is (lr + min_lr) / 2: ' .. cos(61))
  check(approx(cos(36), 0.1 + 0.9 * (0.5 + 0.5 * math.cos(math.pi / 4)), 1e-12), 'cosine at a quarter')
  check(approx(cos(111), 0.1, 1e-12) and cos(500) == cos(111), 'cosine ends at min_lr')
  local lin = S.make { lr = 2.0, min_lr = 0, warmup = 0, steps = 101, kind = 'linear' }
  check(lin(1) == 2 and approx(lin(51), 1, 1e-12) and approx(lin(101), 0, 1e-12), 'linear decay')
  local const = S.make { lr = 3e-4, warmup = 4, steps = 50, kind = 'constant' }
  check(approx(const(2), 1.5e-4, 1e-12) and const(5) == 3e-4 and const(50) == 3e-4, 'constant after warm-up')
  check(not pcall(S.make, { lr = 1, steps = 10, kind = 'cosin' }), 'unknown schedule kind is an error')
end

-- ---- 2. options ----
do
  local ok, err = pcall(mtt.train, { model = tiny_model(1), data = fake_data(), steps = 1, batch_size = 1,
    run_dir = false, learning_rate = 1 })
  check(not ok and err:find("unknown option 'learning_rate'", 1, true) and err:find('accepted: ', 1, true),
    'a misspelt option is an error naming it: ' .. tostring(err))
  ok, err = pcall(mtt.train, { model = tiny_model(1), steps = 1, batch_size = 1, run_dir = false })
  check(not ok and err:find("'data' is required", 1, true), 'a missing option is an error: ' .. tostring(err))
  ok, err = pcall(mtt.train, { model = tiny_model(1), data = fake_data(), steps = 1, batch_size = 1 })
  check(not ok and err:find('run_dir', 1, true), 'no run_dir and no name is an error: ' .. tostring(err))
end

-- ---- 3. against PyTorch ----
local REF = { steps = 30, batch_size = 4, grad_accum = 2, lr = 3e-2, min_lr = 3e-3, warmup = 5,
  weight_decay = 0.1, betas = { 0.9, 0.95 }, eps = 1e-8, clip = 0.5 }
do
  mtt.threads(1)
  local model = tiny_model(7)
  local init = {}
  for _, n in ipairs(ORDER) do init[n] = { shape = model.p[n]:shape(), data = model.p[n]:view(-1):totable() } end
  -- the batches mtt.train will draw, in order
  local probe, batches = fake_data(), {}
  for i = 1, REF.steps * REF.grad_accum do
    local idx, tgt = probe:batch('train', REF.batch_size)
    batches[i] = { idx:totable(), tgt:totable() }
  end
  local res = mtt.train { model = model, data = fake_data(), steps = REF.steps, batch_size = REF.batch_size,
    grad_accum = REF.grad_accum, lr = REF.lr, min_lr = REF.min_lr, warmup = REF.warmup, schedule = 'cosine',
    weight_decay = REF.weight_decay, betas = REF.betas, eps = REF.eps, clip = REF.clip, run_dir = false,
    progress = false }
  local schedule = mtt.train.schedule.make { lr = REF.lr, min_lr = REF.min_lr, warmup = REF.warmup, steps = REF.steps }
  local lrs = {}
  for s = 1, REF.steps do lrs[s] = schedule(s) end
  local input = work .. '/ref_in.json'
  local f = assert(io.open(input, 'w'))
  f:write(metrics.encode({ cfg = REF, init = init, batches = batches, order = ORDER, lrs = lrs, V = V, C = C }))
  f:close()
  local py = work .. '/ref.py'
  f = assert(io.open(py, 'w'))
  f:write([[
import json, sys, torch
torch.set_num_threads(1)
d = json.load(open(sys.argv[1]))
cfg = d['cfg']
p = {n: torch.tensor(v['data'], dtype=torch.float32).view(v['shape']).requires_grad_() for n, v in d['init'].items()}
def model(idx, tgt):
    x = torch.nn.functional.embedding(idx, p['wte'])
    x = torch.nn.functional.layer_norm(x, (d['C'],), p['ln_w'], p['ln_b'], 1e-5)
    x = torch.nn.functional.gelu(x @ p['w1'].t() + p['b1'], approximate='tanh')
    x = x @ p['w2'].t() + p['b2']
    return torch.nn.functional.cross_entropy(x.view(-1, d['V']), tgt.view(-1))
decay = [p[n] for n in d['order'] if p[n].dim() >= 2]
no_decay = [p[n] for n in d['order'] if p[n].dim() < 2]
opt = torch.optim.AdamW([{'params': decay, 'weight_decay': cfg['weight_decay']},
                         {'params': no_decay, 'weight_decay': 0.0}],
                        lr=cfg['lr'], betas=tuple(cfg['betas']), eps=cfg['eps'])
losses = []
k = 0
for step in range(cfg['steps']):
    total = 0.0
    for _ in range(cfg['grad_accum']):
        idx, tgt = d['batches'][k]
        k += 1
        loss = model(torch.tensor(idx), torch.tensor(tgt).long())
        (loss / cfg['grad_accum']).backward()
        total += loss.item()
    torch.nn.utils.clip_grad_norm_(decay + no_decay, cfg['clip'])
    for g in opt.param_groups:
        g['lr'] = d['lrs'][step]
    opt.step()
    opt.zero_grad()
    losses.append(total / cfg['grad_accum'])
print(json.dumps({'losses': losses, 'final': {n: t.detach().view(-1).tolist() for n, t in p.items()}}))
]])
  f:close()
  local pipe = io.popen('/usr/bin/python3 ' .. py .. ' ' .. input .. ' 2>&1')
  local out = pipe:read('*a')
  pipe:close()
  local ok, ref = pcall(cjson.decode, out:match('{.*}') or '')
  if check(ok and type(ref) == 'table', 'the PyTorch side ran: ' .. out:sub(1, 2000)) then
    local worst = 0
    for s = 1, REF.steps do
      worst = math.max(worst, math.abs(res.losses[s] - ref.losses[s]) / math.abs(ref.losses[s]))
    end
    print(string.format('reference: %d steps, loss %.4f -> %.4f (PyTorch %.4f -> %.4f), worst relative loss diff %.2e',
      REF.steps, res.losses[1], res.losses[REF.steps], ref.losses[1], ref.losses[REF.steps], worst))
    check(worst < 2e-5, 'losses agree with PyTorch within 2e-5 (relative)')
    check(res.losses[REF.steps] < 0.5 * res.losses[1], 'the loss falls')
    local wmax = 0
    for _, n in ipairs(ORDER) do
      local a = model.p[n]:view(-1):totable()
      for i = 1, #a do wmax = math.max(wmax, math.abs(a[i] - ref.final[n][i])) end
    end
    print(string.format('reference: final weights max |diff| %.2e', wmax))
    check(wmax < 1e-4, 'final weights agree with PyTorch within 1e-4')
  end
end

-- ---- 4. the run folder ----
local function read_lines(path)
  local l = {}
  for line in io.lines(path) do l[#l + 1] = line end
  return l
end
local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end
local RUN = { steps = 20, batch_size = 3, lr = 1e-2, min_lr = 1e-3, warmup = 3, eval_every = 8, eval_batches = 2,
  ckpt_every = 5, keep_checkpoints = 2, log_every = 4, seed = 5, progress = false }
local function run_opts(extra)
  local o = {}
  for k, v in pairs(RUN) do o[k] = v end
  for k, v in pairs(extra) do o[k] = v end
  return o
end
do
  local dir = work .. '/run'
  local model = tiny_model(3)
  local res = mtt.train(run_opts { model = model, data = fake_data(), run_dir = dir })
  local cfg = cjson.decode(table.concat(read_lines(dir .. '/config.json'), '\n'))
  check(cfg.steps == 20 and cfg.lr == 1e-2 and cfg.eval_every == 8 and cfg.data.n_tokens == #stream,
    'config.json holds the resolved options')
  check(cfg.min_lr == 1e-3 and cfg.schedule == 'cosine' and cfg.grad_accum == 1 and cfg.clip == 1,
    'config.json holds the defaults too')
  local recs = metrics.read(dir .. '/metrics.jsonl')
  local steps = {}
  for i, r in ipairs(recs) do steps[i] = r.step end
  check(table.concat(steps, ',') == '4,8,12,16,20', 'logged steps: every log_every, eval steps, the last: ' ..
    table.concat(steps, ','))
  local schedule = mtt.train.schedule.make { lr = 1e-2, min_lr = 1e-3, warmup = 3, steps = 20 }
  for _, r in ipairs(recs) do
    check(r.lr == schedule(r.step), 'lr in metrics.jsonl is the schedule at step ' .. r.step)
    check(string.format('%a', r.loss) == string.format('%a', res.losses[r.step]), 'metrics loss is the step loss')
    check(r.tokens_per_s > 0 and r.elapsed > 0, 'tokens_per_s and elapsed are positive')
    check((r.val_loss ~= nil) == (r.step % 8 == 0 or r.step == 20), 'val_loss only on eval steps (' .. r.step .. ')')
  end
  -- val_loss: the mean loss of eval_batches val batches, in eval mode, drawn in order
  check(model.mode == 'train', 'the model is back in train mode after evaluating')
  local probe = fake_data()
  local want = {}
  for _, s in ipairs({ 8, 16, 20 }) do
    local sum = 0
    for _ = 1, 2 do
      local idx, tgt = probe:batch('val', 3)
      sum = sum + select(2, model(idx, tgt)):item()
    end
    want[s] = sum / 2
  end
  -- the model has moved on since steps 8 and 16; the last evaluation used the final weights
  check(approx(res.val_losses[20], want[20], 1e-6), string.format('val_loss at the end is the val mean: %.6f vs %.6f',
    res.val_losses[20], want[20]))
  check(recs[5].val_loss == res.val_losses[20], 'val_loss is logged')
  check(not exists(dir .. '/ckpt/step-5.safetensors') and not exists(dir .. '/ckpt/step-10.safetensors')
    and exists(dir .. '/ckpt/step-15.safetensors') and exists(dir .. '/ckpt/step-20.safetensors'),
    'checkpoints every ckpt_every steps and at the end, keep_checkpoints of them kept')
  local ck = require('mtt.checkpoint').load(dir .. '/ckpt/step-20.safetensors')
  check(ck.state.step == 20 and ck.state.data.train == 20 and ck.state.data.val == 6,
    'the checkpoint holds the step and the data cursor')
  check(ck.tensors['optimizer.exp_avg.w1'] ~= nil and ck.tensors['optimizer.exp_avg_sq.b2'] ~= nil and
    ck.tensors.wte ~= nil, 'the checkpoint holds the weights and the optimizer moments')
  -- a finished run, started again, does nothing more
  local again = mtt.train(run_opts { model = tiny_model(3), data = fake_data(), run_dir = dir })
  check(again.step == 20 and next(again.losses) == nil and #metrics.read(dir .. '/metrics.jsonl') == 5,
    'a finished run resumes to nothing')
  -- a changed hyperparameter refuses to resume
  local ok, err = pcall(mtt.train, run_opts { model = tiny_model(3), data = fake_data(), run_dir = dir, lr = 5e-3 })
  check(not ok and err:find("option 'lr'", 1, true), 'resume with another lr is refused: ' .. tostring(err))
end

-- ---- 5. stop at a step, resume, compare with an uninterrupted run ----
do
  local full = mtt.train(run_opts { model = tiny_model(4), data = fake_data(), run_dir = work .. '/full', log_every = 1 })
  local dir = work .. '/stopped'
  local part = mtt.train(run_opts { model = tiny_model(4), data = fake_data(), run_dir = dir, log_every = 1,
    on_step = function(info) return info.step ~= 13 end })
  check(part.step == 13, 'on_step returning false stops the run')
  -- a fresh model and data object: everything must come from the checkpoint
  local rest = mtt.train(run_opts { model = tiny_model(11), data = fake_data(), run_dir = dir, log_every = 1 })
  check(rest.resumed_from == 13 and rest.step == 20, 'the run resumes at step 13')
  local a, b = metrics.read(work .. '/full/metrics.jsonl'), metrics.read(dir .. '/metrics.jsonl')
  check(#a == 20 and #b == 20, 'both runs logged 20 steps')
  local same = true
  for i = 1, 20 do
    if not (a[i] and b[i] and a[i].step == b[i].step and string.format('%a', a[i].loss) == string.format('%a', b[i].loss)
      and a[i].val_loss == b[i].val_loss) then
      same = false
      print(string.format('  step %d: %s vs %s', i, a[i] and a[i].loss or '-', b[i] and b[i].loss or '-'))
    end
  end
  check(same, 'the resumed run logs bitwise the losses of the uninterrupted run')
end

-- ---- 6. progress display ----
do
  local P = mtt.train.progress
  local function sink()
    local s = { text = {} }
    function s:write(...) for _, x in ipairs({ ... }) do self.text[#self.text + 1] = tostring(x) end end
    function s:flush() end
    return s
  end
  local info = { loss = 2.5, lr = 1e-3, tokens_per_s = 12345, elapsed = 10, elapsed_run = 10, first_step = 0 }
  local out = sink()
  local bar = P.new { steps = 100, log_every = 10, tty = true, out = out }
  bar:update(10, info)
  bar:print('hello')
  bar:update(11, info)
  bar:finish()
  local text = table.concat(out.text)
  check(text:find('^\r%[#%-+%] 10/100 loss 2%.5000 lr 1%.0e%-03 ') ~= nil, 'terminal: a bar redrawn with \\r: ' .. text)
  check(#text:match('^\r([^\r]*)\27') < 80, 'terminal: the line fits 80 columns')
  check(text:find('12.3k tok/s', 1, true) and text:find('ETA 1m30s', 1, true), 'terminal: tokens/s and ETA')
  check(text:find('\r\27[K' .. 'hello\n', 1, true) ~= nil, 'terminal: a printed line clears the bar first')
  check(text:sub(-1) == '\n', 'terminal: finish ends the line')
  out = sink()
  bar = P.new { steps = 100, log_every = 10, tty = false, out = out }
  for s = 1, 25 do bar:update(s, info) end
  text = table.concat(out.text)
  local n = select(2, text:gsub('\n', ''))
  check(n == 2 and not text:find('\r', 1, true) and text:find('^step 10/100'), 'not a terminal: plain lines every log_every')
  check(P.duration(75) == '1m15s' and P.duration(4000) == '1h06m' and P.duration(5) == '5s', 'durations')
end

-- ---- 7. corpus builder and the pre-training recipe, end to end ----
do
  local exe = testlib.mtt_binary()
  local function sh(cmd)
    local p = io.popen(cmd .. ' 2>&1')
    local out = p:read('*a')
    p:close()
    return out
  end
  local corpus = work .. '/corpus'
  local out1 = sh(string.format("luajit '%s/tools/corpus/build_corpus.lua' '%s' --max-bytes 150000", mtt.root, corpus))
  local manifest1 = table.concat(read_lines(corpus .. '/MANIFEST'), '\n')
  sh(string.format("luajit '%s/tools/corpus/build_corpus.lua' '%s' --max-bytes 150000", mtt.root, corpus))
  local manifest2 = table.concat(read_lines(corpus .. '/MANIFEST'), '\n')
  check(out1:find('build_corpus: %d+ bytes in') ~= nil, 'the corpus builder ran: ' .. out1)
  check(manifest1 == manifest2 and #manifest1 > 0, 'the corpus builder is deterministic')
  for _, name in ipairs({ 'bible.txt', 'fortunes.txt', 'jargon.txt', 'wordnet.txt' }) do
    local f = io.open(corpus .. '/' .. name, 'rb')
    local text = f and f:read('*a') or ''
    if f then f:close() end
    check(#text > 100000 and #text <= 150001 and not text:find('\n\n\n', 1, true),
      name .. ': whole documents up to --max-bytes, one blank line between them')
    check(exists(corpus .. '/licenses/' .. ({ ['bible.txt'] = 'bible-kjv-text', ['fortunes.txt'] = 'fortunes',
      ['jargon.txt'] = 'jargon-text', ['wordnet.txt'] = 'wordnet-base' })[name]), name .. ': its licence is copied')
  end
  local bible = read_lines(corpus .. '/bible.txt')
  check(bible[1] == 'Genesis 1' and bible[2] == 'In the beginning God created the heaven and the earth.',
    'bible.txt starts with Genesis 1:1')

  local run = work .. '/pretrain'
  local out = sh(string.format("cd '%s' && '%s' run recipes/pretrain.lua --quick --set corpus='%s' --set run_dir='%s' " ..
    "--set threads=1", mtt.root, exe, corpus, run))
  local bpb, unigram = out:match('= ([%d.]+) bits per byte; unigram baseline ([%d.]+) bits per byte')
  bpb, unigram = tonumber(bpb), tonumber(unigram)
  print(string.format('recipe --quick: validation %s bits per byte, unigram baseline %s', tostring(bpb), tostring(unigram)))
  if check(bpb and unigram, 'the recipe printed bits per byte and the unigram baseline:\n' .. out) then
    check(bpb < unigram, 'the quick model beats the unigram baseline')
    check(unigram > 2 and unigram < 8, 'the unigram baseline is plausible for English text')
  end
  check(select(2, out:gsub('sample %d: ', '')) == 2, 'the recipe printed samples')
  -- the base model loads back: config, weights (those of the last checkpoint), tokenizer
  local model_dir = run .. '/model'
  local ok, model = pcall(mtt.nn.GPT, model_dir .. '/config.json')
  if check(ok, 'the base model config loads: ' .. tostring(model)) then
    model:load_state_dict((mtt.io.load_safetensors(model_dir .. '/model.safetensors')))
    local ck = mtt.checkpoint.load(run .. '/ckpt/step-300.safetensors')
    local same = true
    for name, t in pairs(model:state_dict({ tied = false })) do
      same = same and ck.tensors[name] ~= nil and ((t - ck.tensors[name]) ^ 2):sum():item() == 0
    end
    check(same, 'model.safetensors holds the weights of the last checkpoint')
    local tok = mtt.tokenizer.load(model_dir .. '/tokenizer.json')
    local tok2 = mtt.tokenizer.load(run .. '/tokenizer.json')
    local probe = 'And God said, Let there be light: and there was light.'
    check(tok.vocab_size == 512 and table.concat(tok:encode(probe), ',') == table.concat(tok2:encode(probe), ','),
      'the base model tokenizer is the run\'s')
  end
  -- run again: the tokenizer is loaded, the finished run resumes to nothing
  out = sh(string.format("cd '%s' && '%s' run recipes/pretrain.lua --quick --set corpus='%s' --set run_dir='%s' " ..
    "--set threads=1", mtt.root, exe, corpus, run))
  check(out:find('tokenizer: loaded', 1, true) and out:find('already complete', 1, true),
    'a second run loads the tokenizer and finds the run complete:\n' .. out)
  out = sh(string.format("cd '%s' && '%s' run recipes/pretrain.lua --quick --set stepz=3", mtt.root, exe))
  check(out:find("unknown setting 'stepz'", 1, true), 'a misspelt --set key is an error: ' .. out)
end

testlib.rmdir(work)
checker.done()
