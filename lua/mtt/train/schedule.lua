-- mtt.train.schedule: learning-rate schedules, as nanoGPT and most LM recipes use them.
--
--   local lr_at = schedule.make{lr = 6e-4, min_lr = 6e-5, warmup = 100, steps = 5000, kind = 'cosine'}
--   opt.lr = lr_at(step)          -- step = 1 .. steps (the update about to be made)
--
-- Linear warm-up from lr/warmup (step 1) to lr (step = warmup), then 'cosine' (half a cosine
-- down to min_lr at the last step), 'linear' (a straight line down to min_lr) or 'constant'
-- (lr). Steps past `steps` keep min_lr (constant: lr).
local U = require 'mtt.util'
local options = require 'mtt.options'

local S = {}

S.kinds = { cosine = true, linear = true, constant = true }

function S.make(opts)
  local o = options.check('schedule', opts, 'lr:number min_lr:number warmup:number steps:number kind:string')
  local lr, steps, warmup = o.lr, o.steps, o.warmup or 0
  local min_lr = o.min_lr or lr
  local kind = o.kind or 'cosine'
  if not lr or lr < 0 or lr ~= lr then U.raise('schedule: lr must be a number >= 0, got ' .. tostring(lr)) end
  if min_lr < 0 or min_lr > lr then
    U.raise(string.format('schedule: min_lr must be in [0, lr] = [0, %g], got %g', lr, min_lr))
  end
  if not U.is_int(steps) or steps < 1 then U.raise('schedule: steps must be an integer >= 1, got ' .. tostring(steps)) end
  if not U.is_int(warmup) or warmup < 0 or warmup > steps then
    U.raise(string.format('schedule: warmup must be an integer in [0, steps = %d], got %s', steps, tostring(warmup)))
  end
  if not S.kinds[kind] then
    U.raise(string.format("schedule: unknown kind '%s' (accepted: cosine, linear, constant)", tostring(kind)))
  end
  local decay_steps = steps - warmup
  return function(step)
    if step <= warmup then return lr * step / warmup end
    if kind == 'constant' then return lr end
    -- progress 0 right after warm-up, 1 at the last step
    local p = decay_steps > 1 and math.min(1, (step - warmup - 1) / (decay_steps - 1)) or 1
    if kind == 'linear' then return lr - p * (lr - min_lr) end
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (lr - min_lr)
  end
end

return S
