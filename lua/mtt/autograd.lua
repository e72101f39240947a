-- mtt.autograd: grad-mode scopes. The mode is restored even when the function errors, so a
-- failed call in the REPL never leaves autograd switched off.
local C = require('mtt.ffi').C
local U = require 'mtt.util'

local A = {}

local function callable(f)
  if type(f) == 'function' then return true end
  local mt = getmetatable(f)
  return type(mt) == 'table' and mt.__call ~= nil
end

local function finish(prev, ok, ...)
  C.mtt_set_grad_enabled(prev)
  if not ok then error((...), 0) end
  return ...
end

local function scoped(enabled, fname)
  return function(fn, ...)
    if not callable(fn) then U.raise(fname .. ': expected a function, got ' .. type(fn)) end
    local prev = C.mtt_is_grad_enabled()
    C.mtt_set_grad_enabled(enabled)
    return finish(prev, pcall(fn, ...))
  end
end

-- mtt.no_grad(fn, ...) / mtt.enable_grad(fn, ...): fn's results.
A.no_grad = scoped(0, 'mtt.no_grad')
A.enable_grad = scoped(1, 'mtt.enable_grad')

function A.is_grad_enabled() return C.mtt_is_grad_enabled() ~= 0 end

-- mtt.set_grad_enabled(flag): for code that cannot wrap a function; returns the old mode.
function A.set_grad_enabled(flag)
  if type(flag) ~= 'boolean' then U.raise('mtt.set_grad_enabled: flag must be a boolean, got ' .. type(flag)) end
  local prev = C.mtt_is_grad_enabled() ~= 0
  C.mtt_set_grad_enabled(flag and 1 or 0)
  return prev
end

return A
