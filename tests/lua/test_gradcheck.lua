-- test_gradcheck.lua: every differentiable op's backward against central finite differences
-- in f64, on the shared cases of op_cases.lua (broadcasting, views and reused inputs included).
-- f(inputs) = sum(op(inputs) * w) with a fixed random w, so each output element weighs in.
package.path = 'tests/lua/?.lua;' .. package.path
local ffi = require 'ffi'
local mtt = require 'mtt'
local suite = require 'op_cases'

suite.check_coverage('test_gradcheck')

local function objective(case, inputs, w)
  local y = case.f(unpack(inputs))
  return (y * w):sum()
end

local worst_all, failures = 0, {}
for index, case in ipairs(suite.cases) do
  local inputs = suite.make_inputs(case, 1000 + index, 'f64')
  local y = case.f(unpack(inputs))
  local w = mtt.randn(y:shape(), { dtype = 'f64', generator = mtt.Generator(index) })
  objective(case, inputs, w):backward()
  local h, tol, worst = case.h or 1e-6, case.tol or 1e-6, 0
  for i, x in ipairs(inputs) do
    if x.needs_grad ~= 0 then
      assert(x.grad ~= nil, suite.name_of(case) .. ': no gradient for input ' .. i)
      local grad = x.grad:contiguous()
      local g = ffi.cast('double *', grad:data_ptr())
      local p = ffi.cast('double *', x:data_ptr())
      for k = 0, x:numel() - 1 do
        local keep = p[k]
        p[k] = keep + h
        local up = mtt.no_grad(function() return objective(case, inputs, w):item() end)
        p[k] = keep - h
        local down = mtt.no_grad(function() return objective(case, inputs, w):item() end)
        p[k] = keep
        local numeric = (up - down) / (2 * h)
        local err = math.abs(numeric - g[k]) / math.max(1, math.abs(numeric))
        if err > worst then worst = err end
      end
    end
  end
  print(string.format('gradcheck %-22s max rel err %.2e (tol %.0e)', suite.name_of(case), worst, tol))
  if worst > tol then failures[#failures + 1] = suite.name_of(case) end
  worst_all = math.max(worst_all, worst)
end
assert(#failures == 0, 'gradient check failed for: ' .. table.concat(failures, ', '))
print(string.format('all %d gradient checks passed (worst %.2e)', #suite.cases, worst_all))
