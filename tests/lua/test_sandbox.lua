-- tests/lua/test_sandbox.lua: every route out of mtt.sandbox that a recipe could try is refused
-- with an error saying what was refused, and each works when trusted (the refusal comes from
-- the sandbox, not from a broken call). Also: mtt's own writers and readers consult the policy,
-- symlinks and ".." do not get around it, and the process is restored after a sandboxed run.
local mtt = require 'mtt'
local sandbox = require 'mtt.sandbox'
local bfs = require 'mtt.bundle.fs'
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')

local checker = testlib.checker('test_sandbox')
local check = checker.check

-- a fresh folder: base/run (the run folder: writable), base/bundle (readable), base/outside
local base = testlib.tmpdir()
local run, bundle, outside = base .. '/run', base .. '/bundle', base .. '/outside'
for _, d in ipairs({ run, bundle, outside }) do mtt.io.makedirs(d) end
local write = testlib.write
local function exists(path) return bfs.lstat(path) ~= nil end
write(outside .. '/secret.txt', 'secret')
write(bundle .. '/data.txt', 'packed data')
write(bundle .. '/protected.txt', 'an input of the bundle')
write(outside .. '/mod.lua', 'return 1')
write(outside .. '/evilmod.so', 'not really a shared object')
package.cpath = outside .. '/?.so;' .. package.cpath -- the trusted side can see the "C module"
os.execute(string.format("ln -s '%s' '%s/link'", outside, run)) -- a symlink inside the run folder, to outside

local real_open, real_execute, real_dump = io.open, os.execute, string.dump

-- {name, code, pattern of the sandboxed error, check after a trusted run (optional)}
local O = outside
local cases = {
  { 'os.execute', "return os.execute('true')", 'os%.execute is not available' },
  { 'io.popen', "return io.popen('echo hi'):read('*a')", 'io%.popen is not available' },
  { 'os.tmpname', 'return os.tmpname()', 'os%.tmpname is not available' },
  { 'os.remove outside', "assert(os.remove('" .. O .. "/victim1'))", "os%.remove: writing '.*victim1' is outside the run folder",
    function() return not exists(O .. '/victim1') end },
  { 'os.rename outside', "assert(os.rename('" .. O .. "/victim2', 'moved'))", 'os%.rename: writing .*victim2',
    function() return not exists(O .. '/victim2') end },
  { 'require ffi', "return require('ffi').C", "require 'ffi' is refused" },
  { 'global ffi', "return (ffi or require('ffi')).C", 'ffi is not available' },
  { 'require mtt.ffi', "return require('mtt.ffi').C", "require 'mtt%.ffi' is refused" },
  { 'require mtt.sandbox', "return require('mtt.sandbox')", "require 'mtt%.sandbox' is refused" },
  { 'package.loadlib', "return package.loadlib('libc.so.6', 'system')", 'package %(loadlib' },
  { 'require a C module', "return require('evilmod')", "require 'evilmod' is refused: it is a C module",
    nil, 'evilmod' }, -- trusted: the real loader tries the file (and fails on its bytes)
  { 'require jit.util', "return require('jit.util')", "require 'jit%.util' is refused" },
  { 'jit.off', 'jit.off(); return true', "attempt to call field 'off'", nil, false },
  { 'debug', 'return debug.getinfo(1)', 'the debug library is not available' },
  { 'require debug', "return require('debug').getinfo(1)", "require 'debug' is refused" },
  { 'getfenv', 'return getfenv(0)', 'getfenv is not available' },
  { 'setfenv', 'local f = function() end; setfenv(f, {}); return true', 'setfenv is not available' },
  { 'string.dump', 'return string.dump(function() end)', 'string%.dump is not available' },
  { 'string.dump by method', "return (''):dump()", 'string%.dump is not available', nil, 'bad argument' },
  { 'load bytecode', "return load('\\27LJ\\2\\0junk')", 'binary %(bytecode%) chunks are refused' },
  { 'loadstring bytecode', "return loadstring('\\27LJ\\2\\0junk')", 'binary %(bytecode%) chunks are refused' },
  { "load mode 'b'", "return load('return 1', 'x', 'b')", "only text chunks %(mode 't'%)" },
  { 'string metatable', "getmetatable('').__index.upper = nil", 'getmetatable of a string is not available' },
  { 'io.open write outside', "return io.open('" .. O .. "/w1.txt', 'w')", "io%.open: writing '.*w1%.txt' is outside",
    function() return exists(O .. '/w1.txt') end },
  { 'io.open append outside', "return io.open('" .. O .. "/secret.txt', 'a')", 'io%.open: writing' },
  { 'io.open read outside', "return io.open('" .. O .. "/secret.txt'):read('*a')",
    "io%.open: reading '.*secret%.txt' is outside the bundle" },
  { 'io.lines outside', "for l in io.lines('" .. O .. "/secret.txt') do end", 'io%.lines: reading' },
  { 'io.output outside', "io.output('" .. O .. "/w2.txt')", 'io%.output: writing' },
  { 'dofile outside', "return dofile('" .. O .. "/mod.lua')", 'loadfile: reading' },
  { 'loadfile outside', "return loadfile('" .. O .. "/mod.lua')", 'loadfile: reading' },
  { '.. out of the run folder', "return io.open('../outside/w3.txt', 'w')", 'io%.open: writing.*is outside',
    function() return exists(O .. '/w3.txt') end },
  { 'symlink out of the run folder', "return io.open('link/w4.txt', 'w')", 'io%.open: writing.*is outside',
    function() return exists(O .. '/w4.txt') end },
  { 'protected input', "return io.open('" .. bundle .. "/protected.txt', 'w')", 'io%.open: writing' },
  { 'mtt.io.save_safetensors', "require('mtt').io.save_safetensors('" .. O .. "/t.safetensors', {x = require('mtt').zeros(2)})",
    'mtt%.io%.save_safetensors: writing', function() return exists(O .. '/t.safetensors') end },
  { 'mtt.io.makedirs', "require('mtt').io.makedirs('" .. O .. "/newdir')", 'mtt%.io%.makedirs: writing',
    function() return exists(O .. '/newdir') end },
  { 'mtt.checkpoint.save', "require('mtt').checkpoint.save('" .. O .. "/ck.safetensors', {state = {step = 1}})",
    'mtt%.checkpoint%.save: writing', function() return exists(O .. '/ck.safetensors') end },
  { 'tokenizer:save', "require('mtt').tokenizer.train{texts = {'a b c a b'}, vocab_size = 260}:save('" .. O .. "/tok.json')",
    'tokenizer:save: writing', function() return exists(O .. '/tok.json') end },
  { 'mtt.tokenizer.load outside', "require('mtt').tokenizer.load('" .. O .. "/secret.txt')",
    'mtt%.tokenizer%.load: reading', nil, 'tokenizer' },
  { 'mtt.io.entries outside', "for n in require('mtt').io.entries('" .. O .. "/secret.txt') do end",
    'mtt%.io%.open_archive: reading' },
  { 'mtt.train run_dir outside', [[
    local mtt = require 'mtt'
    local tok = mtt.tokenizer.train{texts = {'a b c d e f g a b c'}, vocab_size = 260}
    local data = mtt.data.corpus{texts = {('a b c d e f g '):rep(20)}, tokenizer = tok, block_size = 4, seed = 1}
    local model = mtt.nn.GPT{vocab_size = tok.vocab_size, n_positions = 4, n_embd = 8, n_layer = 1, n_head = 1}
    mtt.train{model = model, data = data, steps = 1, batch_size = 1, run_dir = ']] .. O .. [[/trainrun', progress = false}]],
    'mtt%.train: writing', function() return exists(O .. '/trainrun') end },
}

-- allowed in the sandbox: the run folder, the bundle's files, mtt's own files
local allowed = {
  { 'write in the run folder', "local f = assert(io.open('out.txt', 'w')); f:write('x'); f:close(); return true" },
  { 'read a bundle file', "return assert(io.open('" .. bundle .. "/data.txt')):read('*a') == 'packed data'" },
  { "read mtt's files", "return assert(io.open(require('mtt').root .. '/lua/mtt/init.lua')) ~= nil" },
  { 'mtt in the run folder', "local mtt = require 'mtt'; mtt.io.save_safetensors('t.safetensors', {x = mtt.ones(3)}); " ..
    "return mtt.io.load_safetensors('t.safetensors').x:sum():item() == 3" },
  { 'load text', "return load('return 1 + 1')() == 2 and loadstring('return 3')() == 3" },
  { 'cjson', "return require('cjson').encode({1}) == '[1]'" },
  { 'remove in the run folder', "io.open('gone.txt', 'w'):close(); return os.remove('gone.txt') == true" },
}

local n = 0
local function recipe(code)
  n = n + 1
  local path = bundle .. '/case' .. n .. '.lua'
  write(path, code)
  return path
end

local cwd = bfs.getcwd()
bfs.chdir(run)
local policy = { write = { run }, read = { bundle }, protect = { bundle .. '/protected.txt' } }
for _, c in ipairs(cases) do
  local name, code, pattern, after, trusted_error = c[1], c[2], c[3], c[4], c[5]
  write(O .. '/victim1', 'v'); write(O .. '/victim2', 'v')
  local path = recipe(code)
  local opts = { write = policy.write, read = policy.read, protect = policy.protect }
  local ok, err = pcall(sandbox.run, path, opts)
  check(not ok and tostring(err):find(pattern) ~= nil,
    string.format('%s: sandboxed run should fail with /%s/, got %s %s', name, pattern, tostring(ok), tostring(err)))
  check(not ok and (tostring(err):find('sandbox:', 1, true) ~= nil or trusted_error == false
    or tostring(err):find('attempt to call', 1, true) ~= nil),
    name .. ': the error names the sandbox: ' .. tostring(err))
  check(io.open == real_open and os.execute == real_execute and string.dump == real_dump,
    name .. ': the process is restored after the run')
  -- trusted: the same code is not refused (it may still fail on its own terms)
  opts.trust = true
  local tok, terr = pcall(sandbox.run, path, opts)
  if trusted_error == false then
    check(tok, name .. ': trusted run works: ' .. tostring(terr))
  elseif trusted_error then
    check(tok or (tostring(terr):find(trusted_error, 1, true) ~= nil and not tostring(terr):find('sandbox:', 1, true)),
      name .. ': trusted run is not refused: ' .. tostring(terr))
  else
    check(tok, name .. ': trusted run works: ' .. tostring(terr))
  end
  if after then check(after(), name .. ': the trusted run did what the sandbox refused') end
end
for _, c in ipairs(allowed) do
  local ok, res = pcall(sandbox.run, recipe(c[2]), { write = policy.write, read = policy.read })
  check(ok and res == true, c[1] .. ' is allowed in the sandbox: ' .. tostring(ok) .. ' ' .. tostring(res))
end

-- a recipe's arguments arrive as ... and arg; its own globals do not leak into _G
local ok, a, b = pcall(sandbox.run, recipe('leaked_global = 1; local x, y = ...; return x .. arg[2], arg[0]'),
  { write = { run }, read = { bundle }, args = { 'p', 'q' } })
check(ok and a == 'pq' and b:match('case%d+%.lua$'), 'arguments reach the recipe: ' .. tostring(a))
check(rawget(_G, 'leaked_global') == nil, 'a sandboxed global stays in the sandbox')
-- modules of the bundle load in the sandbox too: their escapes are refused the same way
write(run .. '/evil_mod.lua', "return os.execute('true')")
ok, a = pcall(sandbox.run, recipe("return require('evil_mod')"), { write = { run }, read = { bundle } })
check(not ok and tostring(a):find('os%.execute is not available'), 'a required bundle module is sandboxed: ' .. tostring(a))
-- handles the recipe leaves behind stop working when its run ends
ok, a = pcall(sandbox.run, recipe("require('mtt').test_later = function() return io.open('" .. O ..
  "/late.txt', 'w') end; return true"), { write = { run }, read = { bundle } })
check(ok and type(mtt.test_later) == 'function', 'a recipe can leave a function behind')
ok, a = pcall(mtt.test_later)
check(not ok and tostring(a):find('the sandboxed run has ended') and not exists(O .. '/late.txt'),
  'a left-behind function cannot use io once the run has ended: ' .. tostring(a))
mtt.test_later = nil
-- mtt.bundle is reachable through require 'mtt' but refuses to work inside a sandbox
ok, a = pcall(sandbox.run, recipe("return require('mtt').bundle.unpack{bundle = 'x.mtt', out = '" .. O .. "/u'}"),
  { write = { run }, read = { bundle } })
check(not ok and tostring(a):find('mtt%.bundle%.unpack is not available inside a sandboxed recipe'),
  'mtt.bundle refuses inside the sandbox: ' .. tostring(a))
ok, a = pcall(sandbox.run, recipe("return require('mtt.bundle.fs')"), { write = { run }, read = { bundle } })
check(not ok and tostring(a):find("require 'mtt%.bundle%.fs' is refused"), 'mtt.bundle.fs is refused: ' .. tostring(a))
ok, a = pcall(sandbox.run, recipe("return require('mtt').io.listdir('" .. O .. "')"), { write = { run }, read = { bundle } })
check(not ok and tostring(a):find('mtt%.io%.listdir: reading'), 'listing a folder outside is refused: ' .. tostring(a))
-- a module planted in the run folder under an mtt name (or cjson's) is never loaded as mtt's
mtt.io.makedirs(run .. '/mtt')
write(run .. '/mtt/planted.lua', 'ESCAPED = true; return {}')
write(run .. '/cjson.lua', 'ESCAPED = true; return {}')
ok, a = pcall(sandbox.run, recipe("return require('mtt.planted')"), { write = { run }, read = { bundle } })
check(not ok and tostring(a):find("require 'mtt%.planted': no such module in mtt") and rawget(_G, 'ESCAPED') == nil,
  'a planted mtt.* module is refused: ' .. tostring(a))
local paths = sandbox.with_policy({ enforce = true, write = { run }, read = { bundle } }, function()
  return { package.path, package.cpath } end)
check(not (';' .. paths[1]):find(';%.') and not paths[1]:find(run, 1, true) and not (';' .. paths[2]):find(';%.'),
  'while sandboxed, package.path has no relative or run-folder entries: ' .. paths[1])
check(package.path:find('./?.lua', 1, true) ~= nil, 'package.path is restored afterwards')
check(rawget(_G, 'ESCAPED') == nil, 'nothing planted ran')
-- an error inside the recipe restores the process as well
ok = pcall(sandbox.run, recipe("error('boom')"), { write = { run }, read = { bundle } })
check(not ok and io.open == real_open and sandbox.active() == nil, 'an error restores the process')
-- outside a sandbox the policy does nothing
check(sandbox.check_write('/anywhere', 'x') == '/anywhere' and sandbox.check_read('/etc/x', 'x') == '/etc/x',
  'no policy: the hooks pass paths through')
bfs.chdir(cwd)

bfs.rmtree(base)
checker.done(string.format('(%d escape attempts, each refused and lifted by trust)', #cases))
