-- tests/lua/testlib.lua: helpers shared by the Lua tests (not a test itself: tests/CMakeLists.txt
-- registers only tests/lua/test_*.lua). A test loads it after mtt with
--   local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')
-- (dofile, not require: package.path stays as mtt run sets it, which test_sandbox checks).
local T = {}

-- T.checker(name, opts): counts checks and failures.
--   c.check(cond, msg, ...): a failing check prints "FAIL: msg" (string.format(msg, ...) when
--     arguments follow) and the test goes on; with opts.stop the first failure raises the error
--     instead (for tests whose later steps build on each result). Returns cond.
--   c.expect_error(what, pieces, f, ...): f(...) must raise an error whose message holds each
--     of pieces (a string or a list of strings, plain text); one check. Returns the message.
--   c.done(note): "<name>: N checks passed [note]", or "<name>: F of N checks failed" and exit
--     status 1.
--   c.checks, c.failures: the counts so far.
function T.checker(name, opts)
  local stop = opts and opts.stop
  local c = { checks = 0, failures = 0 }
  local function fail(msg) -- called by check and expect_error: level 3 is the test's line
    if stop then error(msg, 3) end
    c.failures = c.failures + 1
    print('FAIL: ' .. msg)
  end
  function c.check(cond, msg, ...)
    c.checks = c.checks + 1
    if not cond then fail(select('#', ...) > 0 and string.format(msg, ...) or msg) end
    return cond
  end
  function c.expect_error(what, pieces, f, ...)
    c.checks = c.checks + 1
    local ok, err = pcall(f, ...)
    if ok then
      fail(what .. ': no error raised')
      return nil
    end
    err = tostring(err)
    for _, p in ipairs(type(pieces) == 'table' and pieces or { pieces }) do
      if not err:find(p, 1, true) then
        fail(string.format('%s: message "%s" lacks "%s"', what, err, p))
        break
      end
    end
    return err
  end
  function c.done(note)
    if c.failures > 0 then
      print(string.format('%s: %d of %d checks failed', name, c.failures, c.checks))
      os.exit(1)
    end
    print(string.format('%s: %d checks passed', name, c.checks) .. (note and ' ' .. note or ''))
  end
  return c
end

-- |a - b| <= tol (default 1e-9), false for anything but two numbers
function T.near(a, b, tol) return type(a) == 'number' and type(b) == 'number' and math.abs(a - b) <= (tol or 1e-9) end

-- the mtt binary running this test: arg[-k], the first word of the command line (`mtt run
-- test.lua`), made absolute when it is a relative path (tests may change folder)
function T.mtt_binary()
  local i = -1
  while arg[i - 1] do i = i - 1 end
  local bin = arg[i]
  if bin:sub(1, 1) ~= '/' and bin:find('/') then bin = require('mtt.bundle.fs').getcwd() .. '/' .. bin end
  return bin
end

-- the shared Super-NaturalInstructions files ($MTT_NIV2_DIR, else ../shared/data/niv2, else
-- /work/shared/data/niv2); who names the test in the error when they are missing
function T.niv2_dir(who)
  local mtt = require 'mtt'
  local dir = os.getenv('MTT_NIV2_DIR') or '../shared/data/niv2'
  if not mtt.io.stat(dir) then dir = '/work/shared/data/niv2' end
  assert(mtt.io.stat(dir), who .. ': the shared NIv2 files are missing (' .. dir .. ')')
  return dir
end

-- a fresh empty folder (named by os.tmpname); T.rmdir removes a folder and everything in it
function T.tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  require('mtt').io.makedirs(dir)
  return dir
end
function T.rmdir(dir) os.execute("rm -rf '" .. dir .. "'") end

-- runs a shell command: true when its exit status is 0; T.must_sh raises "command failed: cmd"
-- instead of returning false
function T.sh(cmd)
  local r = os.execute(cmd)
  return r == 0 or r == true
end
function T.must_sh(cmd) assert(T.sh(cmd), 'command failed: ' .. cmd) end

-- a file's bytes, nil when it cannot be opened (T.must_read: an error naming the file instead);
-- T.write replaces a file's bytes
function T.read(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return s
end
function T.must_read(path) return (assert(T.read(path), 'cannot read ' .. path)) end
function T.write(path, s)
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
end

-- a tensor's bytes in row-major order (a copy when it is a view), for bit-for-bit comparisons
function T.tensor_bytes(t)
  t = t:contiguous()
  return require('ffi').string(t:data_ptr(), t:numel() * t:element_size())
end

return T
