-- mtt.sandbox: the path policy every file-writing function of mtt consults, and the
-- environment a bundle's recipe runs in unless it is trusted.
--
--   local sandbox = require 'mtt.sandbox'
--   sandbox.check_write(path, 'mtt.io.save_safetensors')   -- in mtt's own writers (no-op when off)
--   path = sandbox.check_read(path, 'mtt.tokenizer.load')  -- in mtt's own readers (may remap)
--   sandbox.run('recipe.lua', {write = {'out'}, read = {'bundle'}, args = {...}})
--
-- Three modes share one hook: "sandbox" refuses writes outside the write folders and reads
-- outside the read folders (plus mtt's own lua/, tasks/, build/data/, core/include/);
-- "trace" records every path read and written (mtt pack finds a recipe's inputs this way);
-- "remap" only maps packed absolute paths to their place in an unpacked bundle. While a mode
-- is active, the process's own io.open, io.lines, io.input, io.output, os.remove and os.rename
-- go through the same policy, so mtt's Lua code is held to it as the recipe is; mtt's C-level
-- readers and writers call check_read / check_write themselves (one line each).
--
-- What the sandboxed recipe gets: the safe parts of the base library (no debug, no
-- setfenv/getfenv, no string.dump, no package, no raw jit), load/loadstring/dofile/loadfile for
-- text chunks only (bytecode refused) that run in the sandbox too, io and os with the policy
-- and without os.execute, io.popen, os.tmpname, and a require that gives mtt's modules (not
-- mtt.ffi, mtt.sandbox or mtt.bundle), cjson, and Lua files of the bundle (sandboxed as well);
-- ffi, jit.*, debug and every C module are refused. Each refusal is a Lua error that says what
-- was refused and that --trust lifts it.
--
-- What it is not: a memory-safety boundary. mtt's tensors are FFI cdata whose C structs a
-- determined recipe could corrupt; the sandbox closes the Lua routes to the system (each is
-- tested in tests/lua/test_sandbox.lua), and the mtt command adds the kernel's Landlock
-- confinement (core/io/landlock.c, mtt.bundle.run with seal) where the kernel has it.
local M = {}

local real = {
  io_open = io.open, io_lines = io.lines, io_input = io.input, io_output = io.output,
  os_remove = os.remove, os_rename = os.rename, os_execute = os.execute, io_popen = io.popen,
  os_tmpname = os.tmpname, require = require, dofile = dofile, loadfile = loadfile, string_dump = string.dump,
}

local state = nil -- the active policy, nil when none

local TRUST_HINT = ' (a bundle\'s recipe runs sandboxed; mtt run --trust lifts this)'

local function fs() return require 'mtt.bundle.fs' end

local function refuse(msg)
  -- reported at the caller outside mtt's own files, as mtt's other errors
  require('mtt.util').raise('sandbox: ' .. msg .. TRUST_HINT)
end

local function mtt_root()
  return fs().resolve(require('mtt.ffi').root)
end

function M.active() return state end

-- ---- the policy ----

local function allowed(path, roots)
  for _, r in ipairs(roots) do
    if fs().inside(path, r) then return true end
  end
  return false
end

-- path -> the path to open (packed absolute paths map into the unpacked bundle)
local function remap(path)
  if not state.remap or type(path) ~= 'string' then return path end
  local abs = fs().absolute(path)
  for _, m in ipairs(state.remap) do
    local rel = fs().relative(abs, m.from)
    if rel then return rel == '.' and m.to or (m.to .. '/' .. rel) end
  end
  return path
end

function M.check_write(path, fname)
  if not state or type(path) ~= 'string' then return path end
  if state.trace then state.trace.write(fs().absolute(path)) end
  if state.enforce then
    local p = fs().resolve(path)
    if not allowed(p, state.write) then
      refuse(string.format("%s: writing '%s' is outside the run folder %s", fname or 'write', path,
        table.concat(state.write, ', ')))
    end
    if state.protect[p] then
      refuse(string.format("%s: '%s' is a file of the bundle; it cannot be changed", fname or 'write', path))
    end
  end
  return path
end

function M.check_read(path, fname)
  if not state or type(path) ~= 'string' then return path end
  path = remap(path)
  if state.trace then state.trace.read(fs().absolute(path)) end
  if state.enforce then
    local p = fs().resolve(path)
    if not allowed(p, state.read) and not allowed(p, state.write) then
      refuse(string.format("%s: reading '%s' is outside the bundle and mtt's data", fname or 'read', path))
    end
  end
  return path
end

-- ---- process-wide patches while a policy is active ----

local function writes(mode) return type(mode) == 'string' and mode:find('[wa+]') ~= nil end

local patched = {
  open = function(path, mode)
    if writes(mode) then M.check_write(path, 'io.open') else path = M.check_read(path, 'io.open') end
    return real.io_open(path, mode)
  end,
  lines = function(path, ...)
    if path ~= nil then path = M.check_read(path, 'io.lines') end
    return real.io_lines(path, ...)
  end,
  input = function(f)
    if type(f) == 'string' then f = M.check_read(f, 'io.input') end
    return real.io_input(f)
  end,
  output = function(f)
    if type(f) == 'string' then M.check_write(f, 'io.output') end
    return real.io_output(f)
  end,
  remove = function(path)
    M.check_write(path, 'os.remove')
    return real.os_remove(path)
  end,
  rename = function(a, b)
    M.check_write(a, 'os.rename')
    M.check_write(b, 'os.rename')
    return real.os_rename(a, b)
  end,
  execute = function(cmd)
    if cmd == nil then return 0 end -- "is a shell available?": not to a sandboxed recipe
    refuse('os.execute is not available')
  end,
  popen = function() refuse('io.popen is not available') end,
  tmpname = function() refuse('os.tmpname is not available (write under the run folder)') end,
  dump = function() refuse('string.dump is not available (bytecode is refused)') end,
}

local function patch(enforce)
  io.open, io.lines, io.input, io.output = patched.open, patched.lines, patched.input, patched.output
  os.remove, os.rename = patched.remove, patched.rename
  if enforce then
    os.execute, io.popen, os.tmpname = patched.execute, patched.popen, patched.tmpname
    string.dump = patched.dump -- also reached as (''):dump through the shared string metatable
  end
end

-- package.path / cpath without the entries a bundle could plant a module in: relative ones
-- ("./?.lua" is the run folder) and any inside the folders of the policy. Otherwise a lazy
-- require in mtt's own code (or of cjson) could load the bundle's file in the trusted
-- environment.
local saved_paths
local function filter_path(path, folders)
  local kept = {}
  for entry in path:gmatch('[^;]+') do
    local dir = entry:match('^(.-)/[^/]*%?') or entry
    local ok = entry:sub(1, 1) == '/'
    for _, f in ipairs(folders) do
      if ok and fs().inside(fs().resolve(dir), f) then ok = false end
    end
    if ok then kept[#kept + 1] = entry end
  end
  return table.concat(kept, ';')
end

local function unpatch()
  io.open, io.lines, io.input, io.output = real.io_open, real.io_lines, real.io_input, real.io_output
  os.remove, os.rename, os.execute, io.popen, os.tmpname = real.os_remove, real.os_rename, real.os_execute,
    real.io_popen, real.os_tmpname
  string.dump = real.string_dump
  if saved_paths then
    package.path, package.cpath = saved_paths[1], saved_paths[2]
    saved_paths = nil
  end
end

-- with_policy(policy, fn, ...): runs fn with the policy active (patches in place), restores
-- the previous state whatever happens, and returns fn's results or rethrows its error.
-- policy: {enforce =, read = {folders}, write = {folders}, protect = {files}, remap =
-- {{from =, to =}}, trace = {read = fn(abs), write = fn(abs)}}
-- policy.seal: leave the policy in force after fn returns, until the process exits (the mtt
-- command does this for a bundle: code the recipe leaves behind, such as a finalizer that runs
-- at exit or an error object's __tostring, then still meets the policy).
function M.with_policy(policy, fn, ...)
  if state then error('mtt.sandbox: a policy is already active (sandboxes do not nest; a sealed one stays)', 2) end
  local p = { enforce = policy.enforce, trace = policy.trace, read = {}, write = {}, protect = {}, remap = policy.remap }
  for _, d in ipairs(policy.read or {}) do p.read[#p.read + 1] = fs().resolve(d) end
  for _, d in ipairs(policy.write or {}) do p.write[#p.write + 1] = fs().resolve(d) end
  for _, f in ipairs(policy.protect or {}) do p.protect[fs().resolve(f)] = true end
  if p.enforce then
    local root = mtt_root()
    for _, sub in ipairs({ 'lua', 'tasks', 'build/data', 'core/include' }) do p.read[#p.read + 1] = root .. '/' .. sub end
  end
  state = p
  patch(p.enforce)
  if p.enforce then
    saved_paths = { package.path, package.cpath }
    local folders = {}
    for _, d in ipairs(p.write) do folders[#folders + 1] = d end
    for _, d in ipairs(policy.read or {}) do folders[#folders + 1] = fs().resolve(d) end
    package.path, package.cpath = filter_path(package.path, folders), filter_path(package.cpath, folders)
  end
  local res = { pcall(fn, ...) }
  if not policy.seal then
    unpatch()
    state = nil
  end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

-- ---- the recipe's environment ----

local function copy(t, drop)
  local c = {}
  for k, v in pairs(t) do
    if not (drop and drop[k]) then c[k] = v end
  end
  return c
end

-- globals a sandboxed recipe may not see, with the reason given when it asks for them
local FORBIDDEN = {
  debug = 'the debug library is not available', setfenv = 'setfenv is not available',
  getfenv = 'getfenv is not available', package = 'package (loadlib, loaders, cpath) is not available',
  module = 'module() is not available', ffi = 'ffi is not available (raw memory access)',
}

local BLOCKED_MODULES = {
  ffi = 'ffi gives raw memory access', debug = 'the debug library escapes any sandbox',
  package = 'package reaches loadlib and the loaders', ['mtt.ffi'] = 'mtt.ffi is the raw C library',
  ['mtt.sandbox'] = 'mtt.sandbox is the policy itself', jit = 'jit controls the compiler',
}
-- pure-data C modules a recipe may use
local SAFE_C = { cjson = true, ['cjson.safe'] = true }

local function is_bytecode(s) return type(s) == 'string' and s:byte(1) == 27 end

-- A text chunk that runs in env; bytecode is refused.
local function load_text(env, chunk, name)
  if type(chunk) == 'function' then
    local parts = {}
    while true do
      local piece = chunk()
      if piece == nil or piece == '' then break end
      parts[#parts + 1] = piece
    end
    chunk = table.concat(parts)
  end
  if type(chunk) ~= 'string' then return nil, 'load: expected a string or a function' end
  if is_bytecode(chunk) then refuse('load: binary (bytecode) chunks are refused; load text only') end
  local f, err = loadstring(chunk, name)
  if not f then return nil, err end
  return setfenv(f, env)
end

local function read_text(path, fname)
  path = M.check_read(path, fname)
  local f, err = real.io_open(path, 'rb')
  if not f then return nil, err end
  local s = f:read('*a')
  f:close()
  return s, path
end

-- The environment table of a sandboxed recipe. opts: args (the recipe's arg table), lua_path
-- (where the recipe's own modules are looked up, package.path syntax).
function M.env(opts)
  opts = opts or {}
  local env = {}
  -- the recipe's handles on io and os work only while its run lasts: code it leaves behind
  -- (a callback, a finalizer) cannot use them once the policy is lifted
  local function guard(fn)
    return function(...)
      if opts.ended and opts.ended() then refuse('the sandboxed run has ended') end
      return fn(...)
    end
  end
  for _, k in ipairs({ 'assert', 'error', 'ipairs', 'next', 'pairs', 'pcall', 'print', 'select', 'tonumber',
    'tostring', 'type', 'unpack', 'xpcall', 'rawequal', 'rawget', 'rawset', 'setmetatable', 'collectgarbage',
    'newproxy', '_VERSION' }) do
    env[k] = _G[k]
  end
  env.string = copy(string)
  env.string.dump = patched.dump
  env.table, env.math, env.bit, env.coroutine = copy(table), copy(math), copy(bit), copy(coroutine)
  env.jit = { version = jit.version, version_num = jit.version_num, os = jit.os, arch = jit.arch }
  env.io = { open = guard(patched.open), lines = guard(patched.lines), read = io.read, write = io.write,
    close = io.close, type = io.type, stdout = io.stdout, stderr = io.stderr, stdin = io.stdin,
    popen = patched.popen, input = guard(patched.input), output = guard(patched.output) }
  env.os = { clock = os.clock, date = os.date, difftime = os.difftime, time = os.time, getenv = os.getenv,
    exit = os.exit, remove = guard(patched.remove), rename = guard(patched.rename), execute = patched.execute,
    tmpname = patched.tmpname }
  env.getmetatable = function(v)
    if type(v) == 'string' then refuse('getmetatable of a string is not available (the string metatable is shared with mtt)') end
    return getmetatable(v)
  end
  env.load = function(chunk, name, mode, e)
    if mode ~= nil and mode ~= 't' then refuse("load: only text chunks (mode 't') are accepted") end
    local f, err = load_text(e or env, chunk, name)
    return f, err
  end
  env.loadstring = function(s, name) return load_text(env, s, name) end
  env.loadfile = function(path)
    local text, where = read_text(path, 'loadfile')
    if not text then return nil, where end
    return load_text(env, text, '@' .. where)
  end
  env.dofile = function(path)
    local f, err = env.loadfile(path)
    if not f then error(err, 2) end
    return f()
  end
  local loaded = {}
  local lua_path = opts.lua_path or './?.lua;./?/init.lua'
  env.require = function(name)
    if type(name) ~= 'string' then error('require: module name must be a string', 2) end
    if BLOCKED_MODULES[name] or name:match('^jit%.') or name:match('^mtt%.bundle') then
      refuse(string.format("require '%s' is refused: %s", name, BLOCKED_MODULES[name] or 'not for recipes'))
    end
    if name == 'string' or name == 'table' or name == 'math' or name == 'io' or name == 'os' or name == 'bit'
      or name == 'coroutine' then
      return env[name]
    end
    if name == 'mtt' or name:match('^mtt%.') or SAFE_C[name] then
      -- mtt's own modules come from mtt's lua/ only (package.path is filtered while sandboxed)
      if package.loaded[name] == nil and not SAFE_C[name] then
        local file = package.searchpath(name, package.path)
        if not file or not fs().inside(fs().resolve(file), mtt_root() .. '/lua') then
          refuse(string.format("require '%s': no such module in mtt (%s)", name, tostring(file)))
        end
      end
      return real.require(name)
    end
    if loaded[name] ~= nil then return loaded[name] end
    local path = package.searchpath(name, lua_path)
    if path then
      local text, where = read_text(path, 'require')
      if not text then error(where, 2) end
      local f, err = load_text(env, text, '@' .. where)
      if not f then error(err, 2) end
      local r = f(name)
      loaded[name] = r == nil and true or r
      return loaded[name]
    end
    if package.searchpath(name, package.cpath) then
      refuse(string.format("require '%s' is refused: it is a C module (native code cannot be sandboxed)", name))
    end
    error(string.format("module '%s' not found in the bundle (searched %s)", name, lua_path), 2)
  end
  env.arg = opts.args or {}
  env._G = env
  return setmetatable(env, { __index = function(_, k)
    if FORBIDDEN[k] then refuse(FORBIDDEN[k]) end
    return nil
  end, __metatable = false })
end

-- run(path, opts) -> the recipe's results. opts: args (array), write (folders it may write),
-- read (folders it may read, besides mtt's), protect (files it may not change), remap,
-- lua_path, seal (keep the policy until the process exits), trust (true: no sandbox; the
-- recipe runs in the global environment, with only the remap). The recipe gets `arg` and its arguments as `...`.
function M.run(path, opts)
  opts = opts or {}
  local args = opts.args or {}
  local argt = { [0] = path }
  for i, a in ipairs(args) do argt[i] = a end
  if opts.trust then
    local f = assert(loadfile(path))
    local saved = _G.arg
    _G.arg = argt
    local function go() return f(unpack(args)) end
    local res = { pcall(M.with_policy, { enforce = false, remap = opts.remap, trace = opts.trace }, go) }
    _G.arg = saved
    if not res[1] then error(res[2], 0) end
    return unpack(res, 2, table.maxn(res))
  end
  local text, where = read_text(path, 'mtt run')
  if not text then error('sandbox: cannot read the recipe ' .. tostring(where), 2) end
  if is_bytecode(text) then error('sandbox: ' .. path .. ' is bytecode; a bundle\'s recipe must be Lua text', 2) end
  local ended = false
  local env = M.env { args = argt, lua_path = opts.lua_path, ended = function() return ended end }
  local f, err = loadstring(text, '@' .. path)
  if not f then error(err, 2) end
  setfenv(f, env)
  local res = { pcall(M.with_policy, { enforce = true, read = opts.read, write = opts.write, protect = opts.protect,
    remap = opts.remap, trace = opts.trace, seal = opts.seal }, f, unpack(args)) }
  ended = not opts.seal
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

return M
