-- op_cases.lua: one or more cases for every op on the tape, shared by the finite-difference
-- gradient check (test_gradcheck.lua, f64) and the PyTorch reference check
-- (test_reference.lua, f32). Each case names the registry op it covers; both tests fail if a
-- registered differentiable op has no case.
--
-- A case: op (registry name), torch (name in tests/reference/torch_reference.py, default op),
-- args (for torch: 0-based dims), inputs (list of specs), f (builds the mtt output from the
-- inputs). An input spec is a shape, or a table {shape, kind = 'normal'|'positive'|'int'|'mask',
-- high = n (int kinds), grad = false}. Optional: h and tol (finite differences), rtol (torch).
local mtt = require 'mtt'
local F = mtt.F

local function int(shape, high) return { shape = shape, kind = 'int', high = high, grad = false } end
local function pos(shape) return { shape = shape, kind = 'positive' } end
local function mask(shape) return { shape = shape, kind = 'mask', grad = false } end

local cases = {
  -- views and copies
  { op = 'view', inputs = { { 2, 6 } }, args = { shape = { 3, 4 } }, f = function(x) return x:view(3, 4) end },
  { op = 'view', name = 'view-squeeze', inputs = { { 2, 1, 3 } }, args = { shape = { 2, 3 } },
    f = function(x) return x:squeeze(2) end },
  { op = 'view', name = 'view-unsqueeze', inputs = { { 2, 3 } }, args = { shape = { 2, 1, 3 } },
    f = function(x) return x:unsqueeze(2) end },
  { op = 'permute', inputs = { { 2, 3, 4 } }, args = { dims = { 2, 0, 1 } }, f = function(x) return x:permute(3, 1, 2) end },
  { op = 'slice', inputs = { { 4, 5 } }, args = { dim = 1, start = 1, stop = 5, step = 2 },
    f = function(x) return x:slice(2, 2, 5, 2) end },
  { op = 'select', inputs = { { 3, 4 } }, args = { dim = 0, index = 2 }, f = function(x) return x:select(1, 3) end },
  { op = 'expand', inputs = { { 3, 1 } }, args = { shape = { 2, 3, 4 } }, f = function(x) return x:expand(2, 3, 4) end },
  { op = 'contiguous', inputs = { { 3, 4 } }, f = function(x) return x:transpose(1, 2):contiguous() end },
  { op = 'clone', inputs = { { 3, 4 } }, f = function(x) return x:clone() end },
  { op = 'to_dtype', inputs = { { 3, 4 } }, h = 1e-2, tol = 1e-4,
    f = function(x) return x:to(x.dtype == 'f64' and 'f32' or 'f64'):to(x.dtype) end },
  -- elementwise
  { op = 'add', inputs = { { 2, 3 }, { 3 } }, f = function(a, b) return a + b end },
  { op = 'sub', inputs = { { 2, 1, 3 }, { 4, 1 } }, f = function(a, b) return a - b end },
  { op = 'mul', inputs = { { 2, 3 }, { 2, 3 } }, f = function(a, b) return a * b end },
  { op = 'mul', name = 'mul-reuse', torch = 'square', inputs = { { 3, 3 } }, f = function(a) return a * a end },
  { op = 'div', inputs = { { 2, 3 }, pos { 2, 1 } }, f = function(a, b) return a / b end },
  { op = 'add_scalar', inputs = { { 2, 3 } }, args = { s = 1.5 }, f = function(a) return a + 1.5 end },
  { op = 'mul_scalar', inputs = { { 2, 3 } }, args = { s = -2.5 }, f = function(a) return a * -2.5 end },
  { op = 'rsub_scalar', inputs = { { 2, 3 } }, args = { s = 2 }, f = function(a) return 2 - a end },
  { op = 'rdiv_scalar', inputs = { pos { 2, 3 } }, args = { s = 3 }, f = function(a) return 3 / a end },
  { op = 'pow_scalar', inputs = { pos { 2, 3 } }, args = { p = 2.5 }, f = function(a) return a ^ 2.5 end },
  { op = 'neg', inputs = { { 2, 3 } }, f = function(a) return -a end },
  { op = 'exp', inputs = { { 2, 3 } }, f = function(a) return a:exp() end },
  { op = 'log', inputs = { pos { 2, 3 } }, f = function(a) return a:log() end },
  { op = 'sqrt', inputs = { pos { 2, 3 } }, f = function(a) return a:sqrt() end },
  { op = 'tanh', inputs = { { 2, 3 } }, f = function(a) return a:tanh() end },
  { op = 'sigmoid', inputs = { { 2, 3 } }, f = function(a) return a:sigmoid() end },
  { op = 'gelu', inputs = { { 4, 5 } }, f = function(a) return a:gelu() end },
  { op = 'relu', inputs = { { 4, 5 } }, f = function(a) return a:relu() end },
  { op = 'clamp', inputs = { { 4, 5 } }, args = { lo = -0.5, hi = 0.7 }, f = function(a) return a:clamp(-0.5, 0.7) end },
  { op = 'masked_fill', inputs = { { 3, 4 }, mask { 4 } }, args = { value = -3 },
    f = function(a, m) return a:masked_fill(m, -3) end },
  -- reductions
  { op = 'sum', inputs = { { 3, 4, 5 } }, args = { dim = 1, keepdim = false }, f = function(a) return a:sum(2) end },
  { op = 'sum', name = 'sum-keepdim', inputs = { { 3, 4 } }, args = { dim = 0, keepdim = true },
    f = function(a) return a:sum(1, true) end },
  { op = 'sum_all', inputs = { { 3, 4 } }, f = function(a) return a:sum() end },
  { op = 'mean', inputs = { { 3, 4, 5 } }, args = { dim = 2, keepdim = false }, f = function(a) return a:mean(-1) end },
  { op = 'mean_all', inputs = { { 3, 4 } }, f = function(a) return a:mean() end },
  { op = 'max', inputs = { { 3, 4, 5 } }, args = { dim = 1, keepdim = false }, f = function(a) return (a:max(2)) end },
  { op = 'max_all', inputs = { { 3, 4 } }, f = function(a) return a:max() end },
  -- linear algebra and network ops
  { op = 'matmul', inputs = { { 3, 4 }, { 4, 5 } }, f = function(a, b) return a:matmul(b) end },
  { op = 'matmul', name = 'matmul-batched-bcast', inputs = { { 2, 3, 4 }, { 1, 4, 2 } },
    f = function(a, b) return a:matmul(b) end },
  { op = 'matmul', name = 'matmul-linear', inputs = { { 2, 3, 4 }, { 4, 5 } }, f = function(a, b) return a:matmul(b) end },
  { op = 'matmul', name = 'matmul-transposed', torch = 'matmul_tt', inputs = { { 4, 3 }, { 5, 4 } },
    f = function(a, b) return a:t():matmul(b:t()) end },
  { op = 'softmax', inputs = { { 3, 7 } }, args = { dim = -1 }, f = function(a) return a:softmax(-1) end },
  { op = 'log_softmax', inputs = { { 3, 7 } }, args = { dim = -1 }, f = function(a) return a:log_softmax(-1) end },
  { op = 'layer_norm', inputs = { { 2, 3, 8 }, { 8 }, { 8 } }, args = { eps = 1e-5 },
    f = function(x, w, b) return F.layer_norm(x, w, b, 1e-5) end },
  { op = 'embedding', inputs = { { 7, 4 }, int({ 2, 3 }, 7) }, f = function(w, i) return F.embedding(i, w) end },
  { op = 'cross_entropy', inputs = { { 6, 5 }, int({ 6 }, 5) }, args = {},
    f = function(l, t) return F.cross_entropy(l, t) end },
  { op = 'cross_entropy', name = 'cross_entropy-mask', inputs = { { 2, 3, 5 }, int({ 2, 3 }, 5), mask { 2, 3 } },
    args = {}, f = function(l, t, m) return F.cross_entropy(l, t, { mask = m }) end },
  { op = 'attention', inputs = { { 2, 2, 5, 4 }, { 2, 2, 5, 4 }, { 2, 2, 5, 4 } }, args = { causal = true },
    f = function(q, k, v) return F.attention(q, k, v, { causal = true }) end },
  { op = 'attention', name = 'attention-full', inputs = { { 1, 2, 3, 4 }, { 1, 2, 6, 4 }, { 1, 2, 6, 4 } },
    args = { causal = false, scale = 0.3 },
    f = function(q, k, v) return F.attention(q, k, v, { causal = false, scale = 0.3 }) end },
  -- torch cannot draw our mask: it gets the mask mtt used (read off the output) as an input
  { op = 'dropout', inputs = { { 6, 8 } }, args = { p = 0.25 },
    f = function(x) return F.dropout(x, 0.25, { generator = mtt.Generator(7) }) end,
    torch_extra = function(inputs, y) return { y:detach():eq(mtt.zeros_like(y)):mul(-1):add(1) } end },
  { op = 'cat', inputs = { { 2, 3 }, { 4, 3 }, { 1, 3 } }, args = { dim = 0 },
    f = function(a, b, c) return mtt.cat({ a, b, c }, 1) end },
  { op = 'gather', inputs = { { 3, 5 }, int({ 3, 4 }, 5) }, args = { dim = 1 },
    f = function(x, i) return x:gather(2, i) end },
  { op = 'index_select', inputs = { { 5, 3 }, int({ 7 }, 5) }, args = { dim = 0 },
    f = function(x, i) return x:index_select(1, i) end },
}

-- The inputs of a case as mtt tensors of the given float dtype (index inputs stay i32), drawn
-- from a generator seeded by the case's position so every run sees the same numbers.
local function make_inputs(case, seed, dtype)
  local gen = mtt.Generator(seed)
  local inputs = {}
  for i, spec in ipairs(case.inputs) do
    if spec.shape == nil then spec = { shape = spec } end
    local kind, t = spec.kind or 'normal'
    if kind == 'int' then
      t = mtt.randint(0, spec.high, spec.shape, { generator = gen })
    elseif kind == 'mask' then
      t = mtt.rand(spec.shape, { dtype = dtype, generator = gen }):gt(mtt.tensor(0.3, { dtype = dtype }))
    elseif kind == 'positive' then
      t = mtt.rand(spec.shape, { dtype = dtype, generator = gen }) + 0.5
    else
      t = mtt.randn(spec.shape, { dtype = dtype, generator = gen })
    end
    if spec.grad ~= false then t = t:detach():requires_grad() end
    inputs[i] = t
  end
  return inputs
end

local function name_of(case) return case.name or case.op end

-- Fails unless every differentiable op of the registry has at least one case.
local function check_coverage(test_name)
  local covered = {}
  for _, c in ipairs(cases) do covered[c.op] = true end
  local missing = {}
  for _, op in ipairs(mtt.ops()) do
    if op.differentiable and not covered[op.name] then missing[#missing + 1] = op.name end
  end
  assert(#missing == 0, test_name .. ': no case for op(s) ' .. table.concat(missing, ', '))
end

return { cases = cases, make_inputs = make_inputs, name_of = name_of, check_coverage = check_coverage }
