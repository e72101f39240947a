-- mtt.nn.activations: activation functions by their Hugging Face names (config
-- activation_function / hidden_act).
--
-- The core's gelu is the tanh approximation (GPT-2's "gelu_new"). Pythia's "gelu" is the exact
-- erf form, which the core lacks; it is composed here from core ops with Abramowitz & Stegun's
-- 7.1.26 for erf (absolute error <= 1.5e-7, below f32 rounding of activations of size ~1), so
-- autograd differentiates it like any other composition. It is several passes over the
-- tensor instead of one: a fused op in the core would be the fast way.
local U = require 'mtt.util'
local tensor = require 'mtt.tensor'
local ops = require 'mtt.ops'

local T = tensor.methods

local A = {}

-- A&S 7.1.26: for z >= 0, erfc(z) ~ t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-z^2),
-- t = 1 / (1 + p z).
local P, A1, A2, A3, A4, A5 = 0.3275911, 0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429

-- gelu(x) = x Phi(x), Phi(x) = 1 - erfc(x/sqrt2)/2 for x >= 0 and erfc(|x|/sqrt2)/2 below 0.
-- With q = erfc(|x|/sqrt2)/2 and s = [x > 0]: Phi = q + s (1 - 2q).
function A.gelu_exact(x)
  local z = T.mul(T.add(T.relu(x), T.relu(T.neg(x))), 1 / math.sqrt(2)) -- |x| / sqrt2
  local t = T.div(1, T.add(T.mul(z, P), 1))
  local poly = T.add(T.mul(t, A5), A4)
  poly = T.add(T.mul(t, poly), A3)
  poly = T.add(T.mul(t, poly), A2)
  poly = T.add(T.mul(t, poly), A1)
  poly = T.mul(t, poly)
  local q = T.mul(T.mul(poly, T.exp(T.neg(T.mul(z, z)))), 0.5)
  local s = T.gt(x, ops.scalar_like(0, x))
  if s.dtype ~= x.dtype then s = T.to(s, x.dtype) end
  local phi = T.add(q, T.mul(s, T.add(T.mul(q, -2), 1)))
  return T.mul(x, phi)
end

local function silu(x) return T.mul(x, T.sigmoid(x)) end

A.by_name = {
  gelu_new = T.gelu, gelu_pytorch_tanh = T.gelu, gelu_fast = T.gelu,
  gelu = A.gelu_exact,
  relu = T.relu, silu = silu, swish = silu, tanh = T.tanh,
}

-- get(name, fname) -> function(x)
function A.get(name, fname)
  local f = A.by_name[name]
  if not f then
    local names = {}
    for k in pairs(A.by_name) do names[#names + 1] = k end
    table.sort(names)
    U.raise(string.format("%s: unknown activation '%s' (accepted: %s)", fname, tostring(name),
      table.concat(names, ', ')))
  end
  return f
end

return A
