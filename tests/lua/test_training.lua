-- test_training.lua: a two-layer MLP and a small causal attention block, written in Lua over
-- mtt's ops, train on toy problems with AdamW; the loss must fall, and the same seed must give
-- bitwise-identical losses on 1 and 2 threads.
local mtt = require 'mtt'
local F = mtt.F

local function param(shape, scale, gen)
  return (mtt.randn(shape, { generator = gen }) * scale):detach():requires_grad()
end

-- MLP on a 2-d, 4-class problem: the class is the quadrant of (x, y) rotated by 30 degrees.
local function train_mlp(steps)
  local gen = mtt.Generator(1)
  local w1, b1 = param({ 64, 2 }, 0.5, gen), mtt.zeros(64):requires_grad()
  local w2, b2 = param({ 4, 64 }, 0.1, gen), mtt.zeros(4):requires_grad()
  local opt = mtt.optim.AdamW({ w1, b1, w2, b2 }, { lr = 1e-2, weight_decay = 0 })
  local losses = {}
  for step = 1, steps do
    local x = mtt.randn({ 256, 2 }, { generator = gen })
    local xs = x:totable()
    local labels = {}
    for i, p in ipairs(xs) do
      local u, v = p[1] * 0.866 - p[2] * 0.5, p[1] * 0.5 + p[2] * 0.866
      labels[i] = (u > 0 and 0 or 1) + (v > 0 and 0 or 2)
    end
    local y = mtt.tensor(labels, { dtype = 'i32' })
    local h = F.linear(x, w1, b1):relu()
    local loss = F.cross_entropy(F.linear(h, w2, b2), y)
    opt:zero_grad()
    loss:backward()
    opt:step()
    losses[step] = loss:item()
  end
  return losses
end

-- One pre-LN transformer block on "repeat the token two places back": position t must
-- predict token t-2, which needs attention.
local function train_attention(steps)
  local V, T, C, H, B = 16, 24, 64, 4, 16
  local gen = mtt.Generator(2)
  local wte, wpe = param({ V, C }, 0.1, gen), param({ T, C }, 0.1, gen)
  local ln1w, ln1b = mtt.ones(C):requires_grad(), mtt.zeros(C):requires_grad()
  local wqkv, wo = param({ 3 * C, C }, 0.08, gen), param({ C, C }, 0.08, gen)
  local ln2w, ln2b = mtt.ones(C):requires_grad(), mtt.zeros(C):requires_grad()
  local wfc, wproj = param({ 4 * C, C }, 0.08, gen), param({ C, 4 * C }, 0.04, gen)
  local params = { wte, wpe, ln1w, ln1b, wqkv, wo, ln2w, ln2b, wfc, wproj }
  local opt = mtt.optim.AdamW(params, { lr = 3e-3, weight_decay = 0.01 })
  local pos = mtt.arange(T, { dtype = 'i32' })
  local mask = {}
  for t = 1, T do mask[t] = t > 2 and 1 or 0 end
  local loss_mask = mtt.tensor({ mask }):expand(B, T):contiguous()
  local losses = {}
  for step = 1, steps do
    local idx = mtt.randint(0, V, { B, T }, { generator = gen })
    local target = mtt.cat({ mtt.zeros({ B, 2 }, { dtype = 'i32' }), idx:slice(2, 1, T - 2) }, 2)
    local x = F.embedding(idx, wte) + F.embedding(pos, wpe)
    local qkv = F.linear(F.layer_norm(x, ln1w, ln1b), wqkv):view(B, T, 3, H, C / H):permute(3, 1, 4, 2, 5)
    local y = F.attention(qkv:select(1, 1), qkv:select(1, 2), qkv:select(1, 3), { causal = true })
    x = x + F.linear(y:transpose(2, 3):reshape(B, T, C), wo)
    x = x + F.linear(F.linear(F.layer_norm(x, ln2w, ln2b), wfc):gelu(), wproj)
    local logits = x:matmul(wte:t())
    local loss = F.cross_entropy(logits, target, { mask = loss_mask })
    opt:zero_grad()
    loss:backward()
    mtt.nn.utils.clip_grad_norm_(params, 1.0)
    opt:step()
    losses[step] = loss:item()
  end
  return losses
end

local function check(name, train, steps, factor)
  local runs = {}
  for _, threads in ipairs({ 1, 2 }) do
    mtt.threads(threads)
    runs[threads] = train(steps)
  end
  local l = runs[1]
  local first = (l[1] + l[2] + l[3]) / 3
  local last = (l[steps] + l[steps - 1] + l[steps - 2]) / 3
  print(string.format('%s: loss %.4f -> %.4f over %d steps', name, first, last, steps))
  assert(last < first * factor, string.format('%s: loss did not fall enough (%.4f -> %.4f)', name, first, last))
  for i = 1, steps do
    assert(string.format('%a', runs[1][i]) == string.format('%a', runs[2][i]),
      string.format('%s: step %d differs between 1 and 2 threads: %a vs %a', name, i, runs[1][i], runs[2][i]))
  end
  print(name .. ': losses bitwise identical on 1 and 2 threads')
end

check('mlp', train_mlp, 150, 0.3)
check('attention block', train_attention, 150, 0.5)
