-- test_errors.lua: misuse gives a Lua error (never a crash) whose message names the op and
-- the shapes or values involved; after each error the session goes on.
-- Run: mtt run tests/lua/test_errors.lua
local mtt = require 'mtt'

local kinds = 0
-- expect(what, {patterns...}, f, ...): f(...) must fail with a message matching every pattern
-- (plain text, not Lua patterns).
local function expect(what, patterns, f, ...)
  local ok, err = pcall(f, ...)
  if ok then error(what .. ': no error raised', 2) end
  err = tostring(err)
  for _, p in ipairs(patterns) do
    if not err:find(p, 1, true) then
      error(string.format('%s: message "%s" lacks "%s"', what, err, p), 2)
    end
  end
  kinds = kinds + 1
  if os.getenv('VERBOSE') then print(string.format('%-32s %s', what, err)) end
end

local a23 = mtt.zeros(2, 3)
local b43 = mtt.zeros(4, 3)

-- shapes
expect('add shapes', { 'add', '[2,3]', '[4,3]' }, function() return a23 + b43 end)
expect('matmul shapes', { 'matmul', '[2,3]', '[4,3]' }, mtt.matmul, a23, b43)
expect('cat shapes', { 'cat', '[2,3]', '[4,2]' }, mtt.cat, { a23, mtt.zeros(4, 2) }, 1)
expect('view size', { 'view', '[5,2]', '[2,3]' }, function() return a23:view(5, 2) end)
expect('view -1 not dividing', { 'view', '[-1,4]', '[2,3]' }, function() return a23:view(-1, 4) end)
expect('reshape two -1', { 'reshape', 'only one size may be -1', '[-1,-1]' }, function() return a23:reshape(-1, -1) end)
expect('view of a non-contiguous tensor', { 'view', '[3,2]' }, function() return a23:t():view(6) end)
expect('expand', { 'expand', '[2,3]', '[4,4]' }, function() return a23:expand(4, 4) end)
expect('negative shape', { 'mtt.zeros', '-3', '[2,-3]' }, mtt.zeros, 2, -3)
expect('non-integer size', { 'mtt.ones', '2.5' }, mtt.ones, 2.5)
expect('huge allocation', { 'zeros', 'memory' }, mtt.zeros, 1e15)
expect('layer_norm weight shape', { 'layer_norm', '[4]' }, mtt.F.layer_norm, a23, mtt.ones(4), mtt.zeros(4))

-- dtypes
local idx = mtt.tensor({ 0, 1 }, { dtype = 'i32' })
expect('exp of i32', { 'exp', 'i32' }, function() return idx:exp() end)
expect('f32 embedding indices', { 'embedding', 'f32' }, mtt.F.embedding, mtt.tensor({ 0, 1 }), mtt.zeros(5, 2))
expect('mixed dtypes', { 'add', 'f32', 'f64' }, function() return a23 + mtt.zeros(2, 3, { dtype = 'f64' }) end)

-- indices and dims
local v3 = mtt.tensor({ 1, 2, 3 })
expect('index out of range', { 'index 10', 'size 3', '[3]' }, function() return v3[10] end)
expect('index 0 (1-based)', { 'index 0' }, function() return v3[0] end)
expect('assign out of range', { 'index -4', '[3]' }, function() v3[-4] = 1 end)
expect('embedding id >= V', { 'embedding', '7', '5' }, mtt.F.embedding, mtt.tensor({ 7 }, { dtype = 'i32' }), mtt.zeros(5, 2))
expect('gather index', { 'gather', '9' }, function()
  return a23:gather(2, mtt.tensor({ { 9 }, { 0 } }, { dtype = 'i32' }))
end)
expect('bad dim', { 'sum', 'dim 3', '[2,3]' }, function() return a23:sum(3) end)
expect('dim 0 (1-based)', { 'softmax', 'dim 0', '[2,3]' }, function() return a23:softmax(0) end)
expect('select out of range', { 'select', 'index 3', '[2,3]' }, function() return a23:select(1, 3) end)
expect('narrow past the end', { 'narrow', 'size 3' }, function() return a23:narrow(2, 2, 5) end)
expect('permute repeats a dim', { 'permute', 'twice' }, function() return a23:permute(1, 1) end)
expect('topk k > size', { 'topk', '5', '3' }, function() return v3:topk(5) end)
expect('cross_entropy target out of range', { 'cross_entropy', '9', '4' }, mtt.F.cross_entropy,
  mtt.zeros(2, 4), mtt.tensor({ 1, 9 }, { dtype = 'i32' }))
expect('0-d index', { 'index', '0-d' }, function() return mtt.tensor(1)[1] end)

-- autograd misuse
local w = mtt.ones(3):requires_grad()
expect('backward on a non-scalar', { 'backward', '[3]' }, function() (w * 2):backward() end)
expect('backward without grad', { 'backward' }, function() mtt.ones(1):sum():backward() end)
local y = (w * w):sum()
y:backward()
expect('backward twice', { 'backward' }, function() y:backward() end)
expect('in-place on a leaf that requires grad', { 'add_' }, function() w:add_(1) end)
local x = mtt.ones(3):requires_grad()
local h = x:exp()
local out = (h * h):sum()
expect('in-place on a tensor that requires grad', { 'mul_', '[3]' }, function() h:mul_(2) end)
mtt.no_grad(function() h:mul_(2) end) -- allowed without grad mode, but h was saved by the graph
expect('in-place on a tensor saved for backward', { 'modified' }, function() out:backward() end)

-- freed tensors
local f = mtt.ones(2, 2)
f:free()
expect('use after free', { 'add', 'freed' }, function() return f + 1 end)
expect('item after free', { 'freed' }, function() return f:sum() end)

-- options and arguments
expect('unknown option', { 'mtt.zeros', "unknown option 'dtyp'", 'accepted: dtype, device, requires_grad' },
  mtt.zeros, 2, { dtyp = 'f64' })
expect('wrong option type', { 'mtt.ones', "option 'dtype' must be a string, got number" }, mtt.ones, 2, { dtype = 1 })
expect('unknown dtype', { "unknown dtype 'float'" }, mtt.zeros, 2, { dtype = 'float' })
expect('positional option key', { 'option keys must be names' }, mtt.zeros, 2, { 'f64' })
expect('dropout p=1.5', { 'dropout', '1.5' }, mtt.F.dropout, v3, 1.5)
expect('non-number in mtt.tensor', { 'mtt.tensor', '[2]', 'string' }, mtt.tensor, { 1, 'x', 3 })
expect('ragged nested table', { 'mtt.tensor', 'ragged', '[2]', '2', '3' }, mtt.tensor, { { 1, 2, 3 }, { 4, 5 } })
expect('ragged depth', { 'mtt.tensor', 'ragged', '[2]' }, mtt.tensor, { { 1 }, 2 })
expect('bad operand', { 'add', 'string' }, function() return v3 + 'x' end)
expect('tensor exponent', { 'pow', 'exponent' }, function() return v3 ^ v3 end)
expect('unknown method', { "no method or field 'sqaure'" }, function() return v3:sqaure() end)
expect('SGD without lr', { 'SGD', "'lr' is required" }, mtt.optim.SGD, { w })
expect('AdamW bad betas', { 'AdamW', 'betas[2]' }, mtt.optim.AdamW, { w }, { betas = { 0.9, 1.5 } })
expect('optimizer params', { 'AdamW', 'params[2]' }, mtt.optim.AdamW, { w, 3 })
expect('no_grad argument', { 'mtt.no_grad', 'function' }, mtt.no_grad, 3)
expect('threads(0)', { 'mtt.threads', '0' }, mtt.threads, 0)
expect('seed', { 'mtt.manual_seed', '-1' }, mtt.manual_seed, -1)
expect('to unknown', { 'to', "'f128'" }, function() return v3:to('f128') end)
expect('t() of 3-D', { 't:', '[2,2,2]' }, function() return mtt.zeros(2, 2, 2):t() end)

-- errors point at the caller's line, not into the binding
local ok, err = pcall(function() return a23 + b43 end)
assert(not ok and tostring(err):find('test_errors.lua:%d+:'), 'position: ' .. tostring(err))
ok, err = pcall(function() local z = mtt.zeros(2, { dtyp = 1 }); return z end) -- not a tail call
assert(not ok and tostring(err):find('test_errors.lua:%d+:'), 'position: ' .. tostring(err))

-- and the session still works
assert((mtt.ones(2) + 1):sum():item() == 4)
assert(kinds >= 25, 'at least 25 kinds of misuse')
print(string.format('test_errors: %d kinds of misuse give clear errors', kinds))
