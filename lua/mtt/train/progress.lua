-- mtt.train.progress: what a training run shows while it runs. On a terminal, one status
-- line redrawn in place with \r (step/steps, a bar, loss, tokens/s, elapsed, ETA); otherwise
-- (a pipe, a log file, CI) plain lines every `log_every` steps, so logs stay readable.
local ffi = require 'ffi'

-- Unique names bound to the libc symbols, so that no other module's cdef of the same function
-- can clash with these.
pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } mtt_train_timespec;
int mtt_train_clock_gettime(int clk, mtt_train_timespec *ts) __asm__("clock_gettime");
int mtt_train_isatty(int fd) __asm__("isatty");
]])

local P = {}

local ts = ffi.new('mtt_train_timespec')
-- Seconds on the monotonic clock.
function P.now()
  ffi.C.mtt_train_clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

function P.isatty(fd) return ffi.C.mtt_train_isatty(fd or 1) == 1 end

-- 75 -> "1m15s", 4000 -> "1h06m"
function P.duration(s)
  if s ~= s or s == math.huge or s < 0 then return '?' end
  s = math.floor(s + 0.5)
  if s < 60 then return s .. 's' end
  if s < 3600 then return string.format('%dm%02ds', s / 60, s % 60) end
  return string.format('%dh%02dm', s / 3600, (s % 3600) / 60)
end

-- 12345 -> "12.3k"
function P.count(n)
  if n >= 1e6 then return string.format('%.2fM', n / 1e6) end
  if n >= 1e4 then return string.format('%.1fk', n / 1e3) end
  return string.format('%.0f', n)
end

-- P.new{steps =, log_every =, tty = (default: isatty(stdout)), out = (default io.stdout)}
-- :update(step, info) with info = {loss, lr, tokens_per_s, elapsed}; :print(line) writes a
-- line without breaking the bar; :finish().
function P.new(o)
  local self = {
    steps = o.steps, log_every = o.log_every or 10, out = o.out or io.stdout,
    tty = o.tty, drawn = false, last_draw = -math.huge, width = 12,
  }
  if self.tty == nil then self.tty = P.isatty(1) end

  -- plain: "step 10/100  loss 2.5000  lr 1.00e-03  12.3k tok/s  10s  ETA 1m30s"; on a terminal
  -- a shorter form after the bar, so that the line fits 80 columns
  local function status(step, info, short)
    local done = step - (info.first_step or 0)
    local eta = done > 0 and info.elapsed_run / done * (self.steps - step) or math.huge
    return string.format(short and '%d/%d loss %.4f lr %.1e %s tok/s %s ETA %s' or
      'step %d/%d  loss %.4f  lr %.2e  %s tok/s  %s  ETA %s', step, self.steps, info.loss, info.lr,
      P.count(info.tokens_per_s or 0), P.duration(info.elapsed), P.duration(eta))
  end

  function self:update(step, info)
    if self.tty then
      local t = P.now()
      if t - self.last_draw < 0.1 and step < self.steps then return end -- redraw at most 10 times a second
      self.last_draw = t
      local filled = math.floor(self.width * step / self.steps)
      local bar = string.rep('#', filled) .. string.rep('-', self.width - filled)
      self.out:write('\r[', bar, '] ', status(step, info, true), '\27[K')
      self.out:flush()
      self.drawn = true
    elseif step % self.log_every == 0 or step == self.steps then
      self.out:write(status(step, info), '\n')
      self.out:flush()
    end
  end

  function self:print(line)
    if self.tty and self.drawn then
      self.out:write('\r\27[K')
      self.drawn = false
      self.last_draw = -math.huge -- redraw the bar at the next update
    end
    self.out:write(line, '\n')
    self.out:flush()
  end

  function self:finish()
    if self.tty and self.drawn then self.out:write('\n') end
    self.drawn = false
    self.out:flush()
  end

  return self
end

return P
