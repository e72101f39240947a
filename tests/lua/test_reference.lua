-- test_reference.lua: every op's forward and backward in f32 against PyTorch (Debian's
-- python3-torch, run by tests/reference/torch_reference.py) on the same inputs and the same
-- output gradient. The reference is computed by PyTorch when the test runs.
-- Error measure per tensor: max |mtt - torch| / max(1, max |torch|) (normalized error), below
-- 2e-5 unless a case states its own rtol (f32 rounding differs with summation order).
package.path = 'tests/lua/?.lua;' .. package.path
local cjson = require 'cjson'
local mtt = require 'mtt'
local suite = require 'op_cases'

suite.check_coverage('test_reference')
cjson.encode_number_precision(14)

local function flat(t)
  if t.ndim == 0 then return { t:item() } end
  return t:reshape(-1):totable()
end

local records, exported = {}, {}
for index, case in ipairs(suite.cases) do
  local inputs = suite.make_inputs(case, 2000 + index, 'f32')
  local y = case.f(unpack(inputs))
  local record = { case = case, out = flat(y), shape = y:shape(), grads = {} }
  local json = { name = suite.name_of(case), op = case.torch or case.op, args = case.args or {}, inputs = {} }
  if y.needs_grad ~= 0 then
    local g = mtt.randn(y:shape(), { generator = mtt.Generator(index) })
    y:backward(g)
    json.grad = flat(g)
    for i, x in ipairs(inputs) do record.grads[i] = x.grad and flat(x.grad) or false end
  end
  local all = { unpack(inputs) }
  if case.torch_extra then
    for _, t in ipairs(case.torch_extra(inputs, y)) do all[#all + 1] = t end
  end
  for i, x in ipairs(all) do
    json.inputs[i] = { shape = x:shape(), dtype = x.dtype, data = flat(x), requires_grad = x.needs_grad ~= 0 }
  end
  records[index], exported[index] = record, json
end

local cases_path, results_path = os.tmpname(), os.tmpname()
local f = assert(io.open(cases_path, 'w'))
f:write(cjson.encode(exported))
f:close()
local cmd = string.format('/usr/bin/python3 tests/reference/torch_reference.py %s %s', cases_path, results_path)
assert(os.execute(cmd) == 0, 'the PyTorch reference failed to run: ' .. cmd)
f = assert(io.open(results_path))
local results = cjson.decode(f:read('*a'))
f:close()
os.remove(cases_path)
os.remove(results_path)

local function normalized_error(a, b)
  assert(#a == #b, string.format('element counts differ: mtt %d, torch %d', #a, #b))
  local diff, scale = 0, 1
  for i = 1, #a do
    diff = math.max(diff, math.abs(a[i] - b[i]))
    scale = math.max(scale, math.abs(b[i]))
  end
  return diff / scale
end

local failures = {}
for index, record in ipairs(records) do
  local case, ref, name = record.case, results[index], suite.name_of(record.case)
  local tol = case.rtol or 2e-5
  assert(table.concat(record.shape, ',') == table.concat(ref.shape, ','),
    string.format('%s: shape [%s] vs torch [%s]', name, table.concat(record.shape, ','), table.concat(ref.shape, ',')))
  local worst = normalized_error(record.out, ref.out)
  local what = 'forward'
  for i, g in ipairs(record.grads) do
    local rg = ref.grads and ref.grads[i]
    if g and rg ~= cjson.null and rg ~= nil then
      local e = normalized_error(g, rg)
      if e > worst then worst, what = e, 'grad of input ' .. i end
    elseif g or (rg ~= nil and rg ~= cjson.null) then
      failures[#failures + 1] = name .. ' (gradient of input ' .. i .. ' present on one side only)'
    end
  end
  print(string.format('reference %-22s max normalized err %.2e (%s, tol %.0e)', name, worst, what, tol))
  if worst > tol then failures[#failures + 1] = name end
end
assert(#failures == 0, 'PyTorch reference check failed for: ' .. table.concat(failures, ', '))
print(string.format('all %d reference checks passed', #records))
