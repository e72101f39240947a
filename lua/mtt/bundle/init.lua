-- mtt.bundle: one file that holds a recipe, every file it needs from outside the installed
-- mtt, a manifest of sha256 sums and, optionally, the run's results; and the means to run it
-- again, safely, anywhere.
--
--   mtt.bundle.pack{recipe = 'recipes/x.lua', output = 'x.mtt', args = {...},
--                   results = 'runs/x', checkpoints = false, compression = 'zstd'}  -> manifest
--   mtt.bundle.run{bundle = 'x.mtt', out = 'x-run', trust = false, threads =}      -> report
--   mtt.bundle.verify{bundle = 'x.mtt', rerun = false, out =, trust = false}        -> report
--   mtt.bundle.unpack{bundle = 'x.mtt', out = 'x'}                                  -> manifest
--
-- Packing runs the recipe (trusted: it is yours) with tracing on (mtt.bundle.trace): the files
-- it reads that existed before it ran and are not part of the installed mtt (mtt.root/lua,
-- mtt.root/build) nor of the system (/usr, /etc...) are its inputs. Members: MANIFEST.json,
-- files/<path relative to the working folder> (files/_mtt/<path> for other files under
-- mtt.root, files/_abs/<absolute path> for the rest), results/<run folder>/... (with
-- results; ckpt/ only with checkpoints). Running unpacks the bundle into the cache (checked
-- against the manifest: a changed file is an error naming it), copies the inputs into the
-- output folder (big ones hardlinked to their cached blob), and runs the recipe there, in
-- mtt.sandbox unless trusted, with the thread count of the packed run; packed absolute paths
-- are mapped to their copies. When results were packed, every metrics.jsonl is compared with
-- the rerun's (mtt.bundle.compare: all fields but the timing ones).
local fs = require 'mtt.bundle.fs'
local archive = require 'mtt.bundle.archive'
local manifest = require 'mtt.bundle.manifest'
local cache = require 'mtt.bundle.cache'
local compare = require 'mtt.bundle.compare'
local options = require 'mtt.options'
local U = require 'mtt.util'

local raise = U.raise
-- (fs, archive and cache are not fields: mtt.bundle is reachable from a sandboxed recipe through
-- require 'mtt', and its entry points refuse to run there)
local M = { manifest = manifest, compare = compare }

local function not_sandboxed(fname)
  local st = require('mtt.sandbox').active()
  if st and st.enforce then raise('sandbox: ' .. fname .. ' is not available inside a sandboxed recipe') end
end

local SYSTEM = { '/usr', '/lib', '/lib64', '/bin', '/sbin', '/etc', '/proc', '/sys', '/dev', '/run', '/var/lib' }

local function mtt_root() return fs.resolve(require('mtt.ffi').root) end
local function C() return require('mtt.ffi').C end

local function is_system(abs)
  for _, p in ipairs(SYSTEM) do if fs.inside(abs, p) then return true end end
  return false
end

-- seeds in a resolved config: every number under a key named seed or ending in _seed
local function find_seeds(t, path, out, depth)
  if type(t) ~= 'table' or depth > 8 then return out end
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = t[k] == nil and t[tonumber(k)] or t[k]
    local p = path == '' and k or (path .. '.' .. k)
    if type(v) == 'number' and (k == 'seed' or k:match('_seed$')) then out[p] = v
    elseif type(v) == 'table' then find_seeds(v, p, out, depth + 1) end
  end
  return out
end

-- a plain-data copy of a recipe's return value (nil when it is not plain data)
local function plain(v, depth)
  local t = type(v)
  if t == 'number' or t == 'string' or t == 'boolean' then return v end
  if t ~= 'table' or depth > 8 or getmetatable(v) ~= nil then return nil end
  local c = {}
  for k, x in pairs(v) do
    if type(k) ~= 'string' and type(k) ~= 'number' then return nil end
    local px = plain(x, depth + 1)
    if px == nil then return nil end
    c[k] = px
  end
  return c
end

local function member_name(abs, cwd, root)
  local rel = fs.relative(abs, cwd)
  if rel and rel ~= '.' and not rel:match('^_mtt/') and not rel:match('^_abs/') then return 'files/' .. rel end
  rel = fs.relative(abs, root)
  if rel and rel ~= '.' then return 'files/_mtt/' .. rel, { root = rel } end
  return 'files/_abs' .. abs, { abs = abs }
end

function M.pack(opts)
  not_sandboxed('mtt.bundle.pack')
  local o = options.check('mtt.bundle.pack', opts,
    'recipe:string output:string args:table results:string checkpoints:boolean compression:string quiet:boolean')
  if not o.recipe or not o.output then raise('mtt.bundle.pack: recipe and output are required') end
  if fs.lstat(o.recipe) ~= 'file' then raise('mtt.bundle.pack: no recipe file at ' .. o.recipe) end
  local say = o.quiet and function() end or function(...) io.stderr:write(string.format(...), '\n') end
  local cwd, root = fs.resolve('.'), mtt_root()
  local results_abs, results_rel
  if o.results then
    results_abs = fs.resolve(o.results)
    results_rel = fs.relative(results_abs, cwd)
    if not results_rel or results_rel == '.' then
      raise('mtt.bundle.pack: the results folder ' .. o.results .. ' must be inside the working folder ' .. cwd)
    end
    if fs.lstat(results_abs) then
      raise('mtt.bundle.pack: ' .. o.results .. ' exists: packing runs the recipe, and the packed results must be ' ..
        'that run\'s; remove the folder (or move it away) and pack again')
    end
  end
  local args = o.args or {}
  local threads = C().mtt_get_num_threads()
  say('mtt pack: running %s with tracing (%d threads)', o.recipe, threads)
  local tr = require('mtt.bundle.trace').run(o.recipe, args)

  -- a file the run wrote or removed is its state, not an input, even when it was read first
  -- (a checkpoint found and resumed from, a metrics file truncated on resume)
  local files, system_files, seen = {}, {}, {}
  local installed = {} -- data of the installed mtt the run read: not packed, but its sha256 is kept
  local out_abs = fs.absolute(o.output)
  local recipe_name
  for i, abs in ipairs(tr.reads) do
    local real = fs.realpath(abs)
    local kind = real and fs.lstat(real)
    local skip = kind ~= 'file' or abs == out_abs or fs.inside(abs, root .. '/lua') or fs.inside(abs, root .. '/build')
      or (real and (fs.inside(real, root .. '/lua') or fs.inside(real, root .. '/build')))
      or (results_abs and fs.inside(abs, results_abs)) or tr.writes[abs]
    if skip and kind == 'file' and fs.inside(real, root .. '/build/data') and not tr.writes[abs] then
      local sha, size = fs.sha256_file(real)
      installed[#installed + 1] = { path = '<mtt>/' .. fs.relative(real, root), sha256 = sha, size = size }
    end
    if not skip and is_system(abs) then
      system_files[#system_files + 1] = abs
      skip = true
    end
    if not skip then
      local name, origin = member_name(abs, cwd, root)
      if not seen[name] then
        seen[name] = true
        local sha, size = fs.sha256_file(real)
        files[#files + 1] = { path = name, sha256 = sha, size = size, role = i == 1 and 'recipe' or 'input',
          source = real, original = origin }
        if i == 1 then recipe_name = name:sub(7) end
      end
    end
  end
  if not recipe_name then raise('mtt.bundle.pack: the recipe ' .. o.recipe .. ' is part of the installed mtt; copy it out first') end

  local config
  if results_abs then
    if fs.lstat(results_abs) ~= 'dir' then
      raise('mtt.bundle.pack: the recipe ran but wrote no ' .. o.results .. ' (check --with-results)')
    end
    for _, rel in ipairs(fs.walk(results_abs)) do
      local is_ckpt = rel:match('^ckpt/') or rel:match('/ckpt/')
      if not rel:match('%.tmp') and (o.checkpoints or not is_ckpt) then
        local src = results_abs .. '/' .. rel
        local sha, size = fs.sha256_file(src)
        files[#files + 1] = { path = 'results/' .. results_rel .. '/' .. rel, sha256 = sha, size = size,
          role = is_ckpt and 'checkpoint' or 'result', source = src }
      end
    end
    local text = fs.read_file(results_abs .. '/config.json')
    if text then
      local ok, c = pcall(require('cjson').new().decode, text)
      if ok then config = c end
    end
  end
  table.sort(files, function(a, b) return a.path < b.path end)

  local m = { format = manifest.FORMAT, mtt_version = require('ffi').string(C().mtt_version()), luajit = jit.version,
    machine = manifest.machine(), threads = threads, recipe = recipe_name, args = args, results = results_rel,
    config = config, seeds = config and find_seeds(config, '', {}, 0) or nil, returned = plain(tr.returned, 0),
    not_packed = #system_files > 0 and system_files or nil, c_modules = #tr.c_modules > 0 and tr.c_modules or nil,
    installed = #installed > 0 and installed or nil,
    files = {} }
  for i, f in ipairs(files) do
    m.files[i] = { path = f.path, sha256 = f.sha256, size = f.size, role = f.role,
      original = f.original and (f.original.abs or ('<mtt>/' .. f.original.root)) or nil }
  end
  local tmp = o.output .. '.tmp'
  local w = archive.writer(tmp, o.compression)
  local ok, err = pcall(function()
    w:add_bytes(manifest.NAME, manifest.encode(m))
    for _, f in ipairs(files) do w:add_file(f.path, f.source) end
    w:close()
  end)
  if not ok then
    pcall(w.close, w)
    os.remove(tmp)
    error(err, 0)
  end
  assert(os.rename(tmp, o.output))
  local total = 0
  for _, f in ipairs(files) do total = total + f.size end
  say('mtt pack: %s: %d files (%.1f kB before compression)%s', o.output, #files, total / 1e3,
    results_rel and (', results of ' .. results_rel) or '')
  for _, p in ipairs(system_files) do say('mtt pack: not packed (a system file): %s', p) end
  for _, f in ipairs(files) do
    if f.role == 'input' and tr.write_dirs[fs.dirname(fs.absolute(f.source))] then
      say('mtt pack: note: %s was read from a folder this run writes (an earlier run\'s state, e.g. a checkpoint ' ..
        'it resumed from?); remove that run folder to pack a fresh run', f.path)
    end
  end
  for _, n in ipairs(tr.c_modules) do say('mtt pack: not packed (a C module): %s', n) end
  return m
end

local function is_empty_dir(path)
  local kind = fs.lstat(path)
  if kind == nil then return true end
  return kind == 'dir' and #require('mtt.io').listdir(path) == 0
end

local function default_out(bundle)
  local base = bundle:match('([^/]+)$'):gsub('%.mtt$', ''):gsub('%.tar%.zst$', '')
  return base .. '-run'
end

-- Compares every packed metrics.jsonl with the rerun's: {{file =, diffs = {...}}, ...}
local function compare_results(dir, m, out)
  local checked = {}
  for _, f in ipairs(m.files) do
    if f.role == 'result' and f.path:match('metrics%.jsonl$') then
      local rel = f.path:sub(#'results/' + 1)
      checked[#checked + 1] = { file = rel, diffs = compare.metrics(dir .. '/' .. f.path, out .. '/' .. rel) }
    end
  end
  return checked
end

-- The start of run and verify: outside a sandbox, the options checked, the bundle unpacked
-- (and checked against its manifest) in the cache. Returns o, dir, manifest, sha256.
local function open_bundle(fname, opts, spec)
  not_sandboxed(fname)
  local o = options.check(fname, opts, spec)
  if not o.bundle then raise(fname .. ': bundle is required') end
  local dir, m, sha = cache.unpacked(o.bundle, { limits = o.limits })
  return o, dir, m, sha
end

function M.run(opts)
  local o, dir, m, sha = open_bundle('mtt.bundle.run', opts, 'bundle:string out:string trust:boolean threads:number '
    .. 'args:table quiet:boolean limits:table seal:boolean')
  local say = o.quiet and function() end or function(...) io.stderr:write(string.format(...), '\n') end
  say('mtt run: %s (sha256 %s): %d files match the manifest', o.bundle, sha:sub(1, 16), #m.files)
  local out = o.out or default_out(o.bundle)
  if not is_empty_dir(out) then
    raise('mtt.bundle.run: the output folder ' .. out .. ' exists and is not empty (choose another with -o)')
  end
  require('mtt.io').makedirs(out)
  local out_abs, root = fs.resolve(out), mtt_root()
  local protect, remap = {}, {}
  for _, f in ipairs(m.files) do
    if f.role == 'recipe' or f.role == 'input' then
      local name = f.path:sub(#'files/' + 1)
      local target = out_abs .. '/' .. name
      require('mtt.io').makedirs(fs.dirname(target))
      if f.size >= cache.MIN_BLOB then fs.link(dir .. '/' .. f.path, target) else fs.copy(dir .. '/' .. f.path, target) end
      protect[#protect + 1] = target
      if name:match('^_abs/') then remap[#remap + 1] = { from = name:sub(5), to = target }
      elseif name:match('^_mtt/') then remap[#remap + 1] = { from = root .. '/' .. name:sub(6), to = target } end
    end
  end
  for _, f in ipairs(type(m.installed) == 'table' and m.installed or {}) do
    local path = type(f.path) == 'string' and f.path:match('^<mtt>/(.*)$')
    local ok, sha = pcall(fs.sha256_file, path and (root .. '/' .. path) or '')
    if not path or not ok or sha ~= f.sha256 then
      say('mtt run: note: %s differs from the packed run\'s (%s): the installed mtt data changed, results may too',
        tostring(f.path), ok and 'another sha256' or 'missing here')
    end
  end
  local machine = manifest.machine()
  if m.machine and (m.machine.arch ~= machine.arch or m.machine.cpu ~= machine.cpu) then
    say('mtt run: note: packed on %s (%s), running on %s (%s): results may differ in the last bits',
      tostring(m.machine.cpu), tostring(m.machine.arch), machine.cpu, machine.arch)
  end
  local C_ = C()
  local threads_before = C_.mtt_get_num_threads()
  local threads = o.threads or m.threads or threads_before
  C_.mtt_set_num_threads(threads)
  local recipe_dir = fs.dirname(m.recipe)
  local lua_path = './?.lua;./?/init.lua;' .. recipe_dir .. '/?.lua;' .. recipe_dir .. '/?/init.lua'
  local cwd = fs.getcwd()
  say('mtt run: %s in %s (%s, %d threads)', m.recipe, out, o.trust and 'trusted' or 'sandboxed', threads)
  if o.seal and not o.trust then
    -- the process ends after this run: confine it at the OS level too (reads: the run folder,
    -- the unpacked bundle, mtt and the system's libraries; writes: the run folder only)
    local lib_dir = fs.dirname(fs.resolve(require('mtt.ffi').library))
    local abi = fs.confine { write = { out_abs, '/dev/null' }, read = { out_abs, dir, root .. '/lua', root .. '/build',
      root .. '/tasks', root .. '/core/include', lib_dir, '/usr', '/lib', '/lib64', '/proc', '/sys/devices/system/cpu',
      '/dev/urandom', '/dev/null', '/etc/ld.so.cache', '/etc/localtime' } }
    if abi > 0 then say('mtt run: confined by Landlock (ABI %d): writes only in %s, no programs, no TCP', abi, out)
    else say('mtt run: note: this kernel has no Landlock; the Lua sandbox alone guards the run') end
  end
  fs.chdir(out_abs)
  local ok, err = pcall(require('mtt.sandbox').run, m.recipe, { args = o.args or m.args, trust = o.trust,
    write = { out_abs }, read = { out_abs, dir }, protect = protect, remap = remap, lua_path = lua_path,
    seal = o.seal })
  fs.chdir(cwd)
  C_.mtt_set_num_threads(threads_before)
  if not ok then error(err, 0) end
  local report = { out = out_abs, manifest = m, dir = dir, sha256 = sha, compared = {} }
  if m.results then
    report.compared = compare_results(dir, m, out_abs)
    -- the other results (models, tokenizers...), byte for byte: a note, not a verdict (a
    -- config.json may hold a path, a checkpoint its elapsed time)
    report.identical, report.differ = {}, {}
    for _, f in ipairs(m.files) do
      if f.role == 'result' and not f.path:match('metrics%.jsonl$') then
        local rel = f.path:sub(#'results/' + 1)
        local ok, sha = pcall(fs.sha256_file, out_abs .. '/' .. rel)
        local list = (ok and sha == f.sha256) and report.identical or report.differ
        list[#list + 1] = rel
      end
    end
  end
  report.same = true
  for _, c in ipairs(report.compared) do
    if #c.diffs > 0 then report.same = false end
  end
  return report
end

function M.verify(opts)
  local o, dir, m, sha = open_bundle('mtt.bundle.verify', opts, 'bundle:string rerun:boolean out:string trust:boolean '
    .. 'threads:number quiet:boolean limits:table seal:boolean')
  local report = { manifest = m, dir = dir, sha256 = sha, files = #m.files, same = true, compared = {} }
  if o.rerun then
    if not m.results then raise('mtt.bundle.verify: ' .. o.bundle .. ' holds no results to compare with (pack it with --with-results)') end
    local out = o.out
    if not out then
      local n = 1
      repeat
        out = string.format('%s/reruns/%s-%d', cache.dir(), sha:sub(1, 16), n)
        n = n + 1
      until not fs.lstat(out)
    end
    local r = M.run { bundle = o.bundle, out = out, trust = o.trust, threads = o.threads, quiet = o.quiet,
      limits = o.limits, seal = o.seal }
    report.compared, report.same, report.out = r.compared, r.same, r.out
    report.identical, report.differ = r.identical, r.differ
  end
  return report
end

function M.unpack(opts)
  not_sandboxed('mtt.bundle.unpack')
  local o = options.check('mtt.bundle.unpack', opts, 'bundle:string out:string limits:table')
  if not o.bundle or not o.out then raise('mtt.bundle.unpack: bundle and out are required') end
  if not is_empty_dir(o.out) then raise('mtt.bundle.unpack: ' .. o.out .. ' exists and is not empty') end
  require('mtt.io').makedirs(o.out)
  archive.extract(o.bundle, o.out, o.limits)
  return manifest.check(o.out, o.bundle)
end

return M
