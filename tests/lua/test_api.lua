-- test_api.lua: the Lua API of mtt (lua_api.md): creation, views, indexing, operators,
-- tostring, option checking, autograd scopes, optimizers. Run: mtt run tests/lua/test_api.lua
local mtt = require 'mtt'

local count = 0
local function section(name) io.write(name, ' ') io.flush() end
local function check(cond, msg)
  count = count + 1
  if not cond then error('check failed: ' .. (msg or '?'), 2) end
end
local function same(a, b, tol, path)
  tol, path = tol or 0, path or ''
  if type(a) == 'table' and type(b) == 'table' then
    if #a ~= #b then error(string.format('length differs at %s: %d vs %d', path, #a, #b), 2) end
    for i = 1, #a do same(a[i], b[i], tol, path .. '[' .. i .. ']') end
    return true
  end
  if type(a) ~= 'number' or type(b) ~= 'number' or math.abs(a - b) > tol then
    error(string.format('value differs at %s: %s vs %s', path, tostring(a), tostring(b)), 2)
  end
  return true
end
local function values(t, expect, tol)
  count = count + 1
  local ok, err = pcall(same, t:totable(), expect, tol or 1e-6)
  if not ok then error(err, 2) end
end
local function fails(pattern, f, ...)
  count = count + 1
  local ok, err = pcall(f, ...)
  if ok then error('expected an error matching ' .. pattern, 2) end
  if not tostring(err):find(pattern) then error('error "' .. tostring(err) .. '" lacks ' .. pattern, 2) end
end

-- ---- creation ----
section('creation')
local t = mtt.tensor({ { 1, 2, 3 }, { 4, 5, 6 } })
check(t.dtype == 'f32' and t.device == 'cpu' and t.ndim == 2, 'defaults')
same(t:shape(), { 2, 3 })
values(t, { { 1, 2, 3 }, { 4, 5, 6 } })
check(mtt.tensor(2.5):item() == 2.5 and mtt.tensor(2.5).ndim == 0, '0-d from a number')
check(mtt.tensor({ 1, 2 }, { dtype = 'i32' }).dtype == 'i32', 'dtype option')
check(mtt.tensor({ 1, 2 }, { dtype = 'f64' }).dtype == 'f64', 'f64')
values(mtt.tensor({ true, false }), { 1, 0 })
local copy = mtt.tensor(t, { dtype = 'f64' })
check(copy.dtype == 'f64', 'tensor copy with dtype')
copy[{ 1, 1 }] = 100
check(t[{ 1, 1 }] == 1, 'mtt.tensor(t) copies')
check(mtt.tensor({}):numel() == 0, 'empty table')
values(mtt.zeros(2, 3), { { 0, 0, 0 }, { 0, 0, 0 } })
values(mtt.zeros({ 2, 3 }), { { 0, 0, 0 }, { 0, 0, 0 } })
values(mtt.ones(2, { dtype = 'f64' }), { 1, 1 })
check(mtt.ones(2, { dtype = 'f64' }).dtype == 'f64', 'ones dtype')
check(mtt.empty(4, 5):numel() == 20, 'empty')
check(mtt.zeros().ndim == 0, 'zeros() is 0-d')
values(mtt.full({ 2 }, 7), { 7, 7 })
values(mtt.arange(4), { 0, 1, 2, 3 })
values(mtt.arange(1, 7, 2), { 1, 3, 5 })
values(mtt.arange(3, { dtype = 'i32' }), { 0, 1, 2 })
check(mtt.arange(3, { dtype = 'i32' }).dtype == 'i32', 'arange dtype')
values(mtt.zeros_like(t), { { 0, 0, 0 }, { 0, 0, 0 } })
values(mtt.ones_like(t), { { 1, 1, 1 }, { 1, 1, 1 } })
check(mtt.zeros_like(mtt.zeros(2, { dtype = 'f64' })).dtype == 'f64', 'like keeps dtype')
check(mtt.zeros(2, { requires_grad = true }).grad_required, 'requires_grad option')

-- randomness: seeds repeat, generators are independent of the default stream
mtt.manual_seed(42)
local r1 = mtt.randn(5):totable()
mtt.manual_seed(42)
local r2 = mtt.randn(5):totable()
same(r1, r2)
local g = mtt.Generator(7)
local a1 = mtt.rand(4, { generator = g }):totable()
g:manual_seed(7)
local a2 = mtt.rand(4, { generator = g }):totable()
same(a1, a2)
for _, v in ipairs(a1) do check(v >= 0 and v <= 1, 'rand in [0, 1]') end
local st = g:get_state()
local b1 = mtt.randn(3, { generator = g }):totable()
g:set_state(st)
same(mtt.randn(3, { generator = g }):totable(), b1)
local ri = mtt.randint(2, 5, { 100 })
check(ri.dtype == 'i32', 'randint is i32')
for _, v in ipairs(ri:totable()) do check(v >= 2 and v < 5 and v == math.floor(v), 'randint range') end
check(mtt.randn_like(t):shape()[2] == 3, 'randn_like')

-- ---- sizes and elements ----
section('sizes')
check(t:size(1) == 2 and t:size(-1) == 3 and t:dim() == 2 and t:numel() == 6, 'size')
same(t:size(), { 2, 3 })
check(t:stride(1) == 3 and t:stride(2) == 1, 'stride')
check(t:is_contiguous(), 'contiguous')
check(#t == 2, '#t')
check(t:data_ptr() ~= nil, 'data_ptr')
same(t:tolist(), t:totable())
check(t.is_leaf and t.grad == nil and t.grad_fn == nil and not t.grad_required, 'leaf properties')

-- ---- indexing ----
section('indexing')
local v = mtt.tensor({ 10, 20, 30 })
check(v[1] == 10 and v[-1] == 30 and v[2] == 20, '1-D index gives numbers')
v[2] = 25
check(v[2] == 25, 'assign')
values(t[2], { 4, 5, 6 })
check(t[2][3] == 6 and t[-1][-1] == 6 and t[{ 2, 1 }] == 4, 'nested index')
local m = mtt.zeros(2, 3)
m[1] = 5
m[2] = mtt.tensor({ 1, 2, 3 })
values(m, { { 5, 5, 5 }, { 1, 2, 3 } })
m[{ 2, 2 }] = -1
check(m[2][2] == -1, 'assign by {i, j}')
m[2] = { 7, 8, 9 }
values(m[2], { 7, 8, 9 })
values(t:narrow(2, 2, 2), { { 2, 3 }, { 5, 6 } })
values(t:slice(2, 2, -1), { { 2, 3 }, { 5, 6 } })
values(t:slice(2, 1, 3, 2), { { 1, 3 }, { 4, 6 } })
values(t:slice(2, -2), { { 2, 3 }, { 5, 6 } })
check(t:slice(2, 3, 2):numel() == 0, 'empty slice')
values(t:select(2, 1), { 1, 4 })
values(t:select(1, -1), { 4, 5, 6 })

-- ---- views ----
section('views')
local x = mtt.arange(12)
values(x:view(3, 4)[2], { 4, 5, 6, 7 })
same(x:view({ 2, -1 }):shape(), { 2, 6 })
same(x:reshape(-1, 3):shape(), { 4, 3 })
local p = x:view(2, 3, 2):permute(3, 1, 2)
same(p:shape(), { 2, 2, 3 })
check(not p:is_contiguous(), 'permute is a strided view')
check(p:contiguous():is_contiguous(), 'contiguous()')
values(t:transpose(1, 2), { { 1, 4 }, { 2, 5 }, { 3, 6 } })
values(t:t(), { { 1, 4 }, { 2, 5 }, { 3, 6 } })
values(mtt.tensor({ 1, 2 }):unsqueeze(2):expand(2, 3), { { 1, 1, 1 }, { 2, 2, 2 } })
values(mtt.tensor({ 1, 2 }):unsqueeze(1):expand(3, -1), { { 1, 2 }, { 1, 2 }, { 1, 2 } })
same(mtt.zeros(1, 3, 1):squeeze():shape(), { 3 })
same(mtt.zeros(1, 3, 1):squeeze(1):shape(), { 3, 1 })
same(mtt.zeros(3):unsqueeze(-1):shape(), { 3, 1 })
same(mtt.zeros(2, 3, 4):flatten():shape(), { 24 })
same(mtt.zeros(2, 3, 4):flatten(2):shape(), { 2, 12 })
local c = t:clone()
c[{ 1, 1 }] = 9
check(t[{ 1, 1 }] == 1, 'clone copies')
local vw = t:view(6)
check(vw[1] == 1, 'view shares')
check(t:to('f64').dtype == 'f64' and t:double().dtype == 'f64' and t:int().dtype == 'i32', 'to dtype')
check(t:to({ dtype = 'f64', device = 'cpu' }).dtype == 'f64', 'to table')
check(t:to('cpu').device == 'cpu' and t:float().dtype == 'f32', 'to cpu')
values(mtt.tensor({ 1.7, -1.7 }):int(), { 1, -1 })

-- ---- operators and math ----
section('operators')
local a = mtt.tensor({ 1, 2, 3 })
local b = mtt.tensor({ 4, 5, 6 })
values(a + b, { 5, 7, 9 })
values(a - b, { -3, -3, -3 })
values(a * b, { 4, 10, 18 })
values(b / a, { 4, 2.5, 2 })
values(a + 1, { 2, 3, 4 })
values(1 + a, { 2, 3, 4 })
values(a - 1, { 0, 1, 2 })
values(10 - a, { 9, 8, 7 })
values(a * 2, { 2, 4, 6 })
values(2 * a, { 2, 4, 6 })
values(a / 2, { 0.5, 1, 1.5 })
values(6 / a, { 6, 3, 2 })
values(-a, { -1, -2, -3 })
values(a ^ 2, { 1, 4, 9 })
values(t + a, { { 2, 4, 6 }, { 5, 7, 9 } }) -- broadcasting
values(a:add(b), { 5, 7, 9 })
values(mtt.add(a, 1), { 2, 3, 4 })
values(a:pow(3), { 1, 8, 27 })
check(a ~= mtt.tensor({ 1, 2, 3 }) and a == a, '__eq is identity')
values(a:exp(), { math.exp(1), math.exp(2), math.exp(3) }, 1e-4)
values(a:log(), { 0, math.log(2), math.log(3) }, 1e-6)
values(a:sqrt(), { 1, math.sqrt(2), math.sqrt(3) }, 1e-6)
values(mtt.tensor({ 0 }):tanh(), { 0 })
values(mtt.tensor({ 0 }):sigmoid(), { 0.5 })
values(mtt.tensor({ -1, 2 }):relu(), { 0, 2 })
values(mtt.F.relu(mtt.tensor({ -1, 2 })), { 0, 2 })
values(mtt.tensor({ 0 }):gelu(), { 0 })
values(mtt.tensor({ -2, 0.5, 3 }):clamp(-1, 1), { -1, 0.5, 1 })
values(mtt.tensor({ -2, 0.5, 3 }):clamp(nil, 1), { -2, 0.5, 1 })
values(mtt.tensor({ -2, 0.5, 3 }):clamp(0), { 0, 0.5, 3 })
values(a:masked_fill(mtt.tensor({ 1, 0, 1 }), -9), { -9, 2, -9 })
values(a:eq(2), { 0, 1, 0 })
values(a:gt(mtt.tensor({ 0, 2, 4 })), { 1, 0, 0 })
values(a:lt(2), { 1, 0, 0 })

-- ---- reductions ----
section('reductions')
check(t:sum():item() == 21 and t:mean():item() == 3.5, 'sum/mean all')
values(t:sum(1), { 5, 7, 9 })
values(t:sum(-1), { 6, 15 })
values(t:sum(2, true), { { 6 }, { 15 } })
check(t:sum({ 1, 2 }):item() == 21, 'sum over a table of dims')
values(t:mean(2), { 2, 5 })
check(t:max():item() == 6, 'max all')
local mv, mi = mtt.tensor({ { 1, 9, 3 }, { 7, 2, 8 } }):max(2)
values(mv, { 9, 8 })
values(mi, { 1, 2 }) -- 0-based, as torch
check(mi.dtype == 'i32', 'indices are i32')
local nv, ni = mtt.tensor({ { 1, 9, 3 }, { 7, 2, 8 } }):min(2)
values(nv, { 1, 2 })
values(ni, { 0, 1 })
values(mtt.tensor({ { 1, 9, 3 }, { 7, 2, 8 } }):argmax(1), { 1, 0, 1 })
check(mtt.tensor({ { 1, 9, 3 }, { 7, 2, 8 } }):argmax():item() == 1, 'flat argmax')
local tv, ti = mtt.tensor({ 3, 1, 4, 1, 5 }):topk(2)
values(tv, { 5, 4 })
values(ti, { 4, 2 })
local sv = mtt.tensor({ 3, 1, 4, 1, 5 }):topk(2, -1, false)
values(sv, { 1, 1 })

-- ---- nn ops ----
section('nn')
local A = mtt.tensor({ { 1, 2 }, { 3, 4 } })
local B = mtt.tensor({ { 5, 6 }, { 7, 8 } })
values(A:matmul(B), { { 19, 22 }, { 43, 50 } })
values(mtt.matmul(A, B), { { 19, 22 }, { 43, 50 } })
local s = mtt.tensor({ { 1, 2, 3 }, { 1, 1, 1 } }):softmax(-1)
values(s:sum(-1), { 1, 1 }, 1e-6)
values(s[2], { 1 / 3, 1 / 3, 1 / 3 }, 1e-6)
local s1 = mtt.tensor({ { 1, 2 }, { 3, 4 } }):softmax(1) -- not the last dim
values(s1:sum(1), { 1, 1 }, 1e-6)
values(s1:t(), mtt.tensor({ { 1, 3 }, { 2, 4 } }):softmax(2):totable(), 1e-6)
values(mtt.tensor({ { 1, 2 }, { 3, 4 } }):log_softmax(1):exp():sum(1), { 1, 1 }, 1e-6)
values(mtt.F.softmax(mtt.tensor({ 0, 0 }), -1), { 0.5, 0.5 })
values(mtt.cat({ a, b }), { 1, 2, 3, 4, 5, 6 })
same(mtt.cat({ A, B }, 2):shape(), { 2, 4 })
values(A:gather(2, mtt.tensor({ { 1 }, { 0 } }, { dtype = 'i32' })), { { 2 }, { 3 } })
values(A:index_select(1, mtt.tensor({ 1, 1, 0 }, { dtype = 'i32' })), { { 3, 4 }, { 3, 4 }, { 1, 2 } })
local W = mtt.tensor({ { 0, 0 }, { 1, 1 }, { 2, 2 } })
values(mtt.F.embedding(mtt.tensor({ 2, 0 }, { dtype = 'i32' }), W), { { 2, 2 }, { 0, 0 } })
local ln = mtt.F.layer_norm(mtt.tensor({ { 1, 2, 3 } }), mtt.ones(3), mtt.zeros(3))
values(ln:mean(-1), { 0 }, 1e-6)
values(mtt.F.linear(mtt.tensor({ { 1, 2 } }), mtt.tensor({ { 1, 0 }, { 0, 1 }, { 1, 1 } }), mtt.tensor({ 0, 0, 1 })),
  { { 1, 2, 4 } })
local logits = mtt.zeros(2, 4)
local ce = mtt.F.cross_entropy(logits, mtt.tensor({ 1, 3 }, { dtype = 'i32' }))
check(math.abs(ce:item() - math.log(4)) < 1e-5, 'cross_entropy of uniform logits')
local ce2 = mtt.F.cross_entropy(logits, mtt.tensor({ 1, 3 }, { dtype = 'i32' }), { mask = mtt.tensor({ 1, 0 }) })
check(math.abs(ce2:item() - math.log(4)) < 1e-5, 'cross_entropy with a mask')
local q = mtt.randn(1, 2, 4, 8)
local att = mtt.F.attention(q, q, q, { causal = true })
same(att:shape(), { 1, 2, 4, 8 })
values(att[1][1][1], q[1][1][1]:totable(), 1e-5) -- causal: the first position sees itself only
local drop = mtt.F.dropout(mtt.ones(1000), 0.5, { generator = mtt.Generator(1) })
local kept = drop:gt(0):sum():item()
check(kept > 400 and kept < 600, 'dropout keeps about half')
check(math.abs(drop:sum():item() / 1000 - 1) < 0.15, 'dropout rescales')
values(mtt.F.dropout(a, 0.5, { training = false }), { 1, 2, 3 })

-- ---- in place ----
section('inplace')
local ip = mtt.zeros(3)
check(ip:add_(1) == ip, 'in-place returns self')
values(ip, { 1, 1, 1 })
ip:add_(mtt.tensor({ 1, 2, 3 }), 2)
values(ip, { 3, 5, 7 })
ip:mul_(2)
values(ip, { 6, 10, 14 })
ip:mul_(mtt.tensor({ 0, 1, 2 }))
values(ip, { 0, 10, 28 })
ip:sub_(1)
values(ip, { -1, 9, 27 })
ip:fill_(4)
values(ip, { 4, 4, 4 })
ip:zero_()
values(ip, { 0, 0, 0 })
ip:copy_(mtt.tensor({ 1, 2, 3 }))
values(ip, { 1, 2, 3 })
local base = mtt.zeros(2, 2)
base:select(1, 2):fill_(3) -- writes through a view
values(base, { { 0, 0 }, { 3, 3 } })

-- ---- autograd ----
section('autograd')
local w = mtt.tensor({ 1, 2, 3 }):requires_grad()
check(w.grad_required and w.is_leaf, 'requires_grad() returns the tensor')
local y = (w * w):sum()
check(y.grad_fn ~= nil and not y.is_leaf, 'grad_fn of a result')
y:backward()
values(w.grad, { 2, 4, 6 })
local y2 = (w * 3):sum()
y2:backward()
values(w.grad, { 5, 7, 9 }) -- gradients accumulate
w:set_grad(nil)
check(w.grad == nil, 'set_grad(nil)')
w.grad = mtt.ones(3)
values(w.grad, { 1, 1, 1 })
w:zero_grad()
check(w.grad == nil, 'zero_grad')
w:requires_grad(false)
check(not w.grad_required, 'requires_grad(false)')
w:requires_grad(true)
local out, two = mtt.no_grad(function(k) return w * k, 2 end, 5)
check(two == 2 and out.grad_fn == nil and not out.grad_required, 'no_grad returns fn results, records nothing')
check(mtt.is_grad_enabled(), 'grad mode restored')
local ok = pcall(mtt.no_grad, function() error('boom') end)
check(not ok and mtt.is_grad_enabled(), 'grad mode restored after an error')
local inner = mtt.no_grad(function() return mtt.enable_grad(function() return mtt.is_grad_enabled() end) end)
check(inner, 'enable_grad inside no_grad')
local prev = mtt.set_grad_enabled(false)
check(prev == true and not mtt.is_grad_enabled(), 'set_grad_enabled')
mtt.set_grad_enabled(true)
local d = (w * 2):detach()
check(d.grad_fn == nil and not d.grad_required, 'detach')
local z = mtt.tensor({ 1, 2 }):requires_grad()
local gz = mtt.tensor({ 1, -1 })
;(z * 2):backward(gz)
values(z.grad, { 2, -2 })

-- ---- tostring ----
section('tostring')
local s2 = tostring(mtt.tensor({ { 1, 2 }, { 3, 4 } }))
check(s2:find('tensor%(%[%[1%., 2%.%],') and s2:find('shape=%[2,2%]') and s2:find('dtype=f32'), s2)
check(tostring(mtt.tensor({ 0.5, 1.25 })):find('0%.5000, 1%.2500'), 'fixed point')
check(tostring(mtt.tensor({ 1, 2 }, { dtype = 'i32' })):find('%[1, 2%]'), 'integers')
check(tostring(mtt.tensor(3)):find('tensor%(3%.'), '0-d')
check(tostring(w):find('requires_grad=true'), 'requires_grad shown')
check(tostring(w * 2):find('grad_fn='), 'grad_fn shown')
local big = tostring(mtt.zeros(100, 100))
check(big:find('%.%.%.') and #big < 2000, 'big tensors summarized')
check(tostring(mtt.tensor({ 0 / 0, 1 / 0 })):find('nan') and tostring(mtt.tensor({ 1 / 0 })):find('inf'), 'nan, inf')
local freed = mtt.zeros(2)
freed:free()
check(tostring(freed):find('freed'), 'freed tensor prints')

-- ---- options ----
section('options')
fails("mtt.zeros: unknown option 'dtyp' %(accepted: dtype, device, requires_grad%)", mtt.zeros, 2, { dtyp = 'f64' })
fails("option 'requires_grad' must be a boolean, got string", mtt.ones, 2, { requires_grad = 'yes' })
fails("unknown dtype 'f8'", mtt.zeros, 2, { dtype = 'f8' })
fails("unknown option 'lrate'", mtt.optim.AdamW, { w }, { lrate = 1 })
fails("unknown option 'causal_'", mtt.F.attention, q, q, q, { causal_ = true })

-- ---- optimizers ----
section('optim')
local p1 = mtt.tensor({ 1, 2 }):requires_grad()
local sgd = mtt.optim.SGD({ p1 }, { lr = 0.1 })
;(p1 * p1):sum():backward()
sgd:step()
values(p1, { 0.8, 1.6 }, 1e-6)
sgd:zero_grad()
check(p1.grad == nil, 'zero_grad')
sgd.lr = 0.5 -- schedules set the field
;(p1 * 1):sum():backward()
sgd:step()
values(p1, { 0.3, 1.1 }, 1e-6)

-- momentum: the first step stores the gradient, later steps mix it in
local p2 = mtt.tensor({ 1 }):requires_grad()
local sgdm = mtt.optim.SGD({ p2 }, { lr = 1, momentum = 0.9 })
for _ = 1, 2 do
  sgdm:zero_grad()
  p2:sum():backward()
  sgdm:step()
end
values(p2, { 1 - 1 - 1.9 }, 1e-6)

-- AdamW against its formula (one step: update = lr * sign-like m_hat / (sqrt(v_hat) + eps))
local p3 = mtt.tensor({ 1, -2 }):requires_grad()
local adam = mtt.optim.AdamW({ p3 }, { lr = 0.1, weight_decay = 0 })
;(p3 * mtt.tensor({ 3, 4 })):sum():backward()
adam:step()
values(p3, { 0.9, -2.1 }, 1e-5)
check(adam.step_count == 1, 'step count')

-- state_dict round trip: a restored optimizer takes the same next step
local function make()
  local q1 = mtt.tensor({ 0.5, -0.5, 2 }):requires_grad()
  return q1, mtt.optim.AdamW({ q1 }, { lr = 0.05, betas = { 0.8, 0.99 } })
end
local qa, oa = make()
for _ = 1, 3 do
  oa:zero_grad()
  ;(qa * qa):sum():backward()
  oa:step()
end
local sd = oa:state_dict()
check(sd.step == 3 and sd.hyper.lr == 0.05 and sd.hyper.betas[1] == 0.8 and sd.type == 'AdamW', 'state_dict fields')
check(mtt.is_tensor(sd.state[1].exp_avg) and mtt.is_tensor(sd.state[1].exp_avg_sq), 'state tensors')
local qb, ob = make()
qb:requires_grad(false)
qb:copy_(qa)
qb:requires_grad(true)
ob:load_state_dict(sd)
check(ob.step_count == 3 and ob.betas[2] == 0.99, 'hyperparameters restored')
sd.state[1].exp_avg:fill_(123) -- the optimizer holds its own copy
for _, pair in ipairs({ { qa, oa }, { qb, ob } }) do
  pair[2]:zero_grad()
  ;(pair[1] * pair[1]):sum():backward()
  pair[2]:step()
end
local sd2 = oa:state_dict()
values(qb, qa:totable(), 0)
values(ob:state_dict().state[1].exp_avg, sd2.state[1].exp_avg:totable(), 0)
fails('load_state_dict', ob.load_state_dict, ob, { type = 'SGD', step = 1, hyper = {}, state = {} })
local bad = oa:state_dict()
bad.state[1].exp_avg = mtt.zeros(2)
fails('state%[1%]%.exp_avg is %[2%]', ob.load_state_dict, ob, bad)
local sg = mtt.optim.SGD({ p2 }, { lr = 1, momentum = 0.9 })
sg:load_state_dict(sgdm:state_dict())
check(sg.momentum == 0.9 and sg.state[1].momentum_buffer:item() == sgdm.state[1].momentum_buffer:item(), 'SGD state')

-- gradient clipping returns the norm before clipping
local pc = mtt.tensor({ 0, 0 }):requires_grad()
;(pc * mtt.tensor({ 3, 4 })):sum():backward()
local norm = mtt.nn.utils.clip_grad_norm_({ pc }, 1)
check(math.abs(norm - 5) < 1e-5, 'total norm')
values(pc.grad, { 0.6, 0.8 }, 1e-5)

-- ---- misc ----
section('misc')
local n0 = mtt.threads()
check(type(n0) == 'number' and n0 >= 1, 'threads()')
check(mtt.threads(1) == 1, 'threads(1)')
mtt.threads(n0)
check(type(mtt.version) == 'string' and mtt.blas_info():find('OpenBLAS'), 'version, blas_info')
check(mtt.cuda.available() == false or mtt.cuda.available() == true, 'cuda.available')
local ops, names = mtt.ops(), {}
for _, o in ipairs(ops) do names[o.name] = o.differentiable end
check(names.add == true and names.matmul == true, 'ops() lists differentiable ops')
check(mtt.is_tensor(a) and not mtt.is_tensor({}), 'is_tensor')

-- temporaries are collected although Lua sees only their small handles: 1.6 GB of 16 MB
-- temporaries must not raise the peak memory by more than a few hundred MB
local function peak_kb()
  local f = io.open('/proc/self/status')
  if not f then return nil end
  local kb = f:read('*a'):match('VmHWM:%s*(%d+)')
  f:close()
  return tonumber(kb)
end
local big = mtt.zeros(2048, 2048)
local before = peak_kb()
for _ = 1, 100 do local _ = big + 1 end
local after = peak_kb()
if before and after then
  check(after - before < 700 * 1024, string.format('peak memory grew by %d MB', (after - before) / 1024))
end

print(string.format('\ntest_api: %d checks passed', count))
