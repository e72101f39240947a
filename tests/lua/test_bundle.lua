-- tests/lua/test_bundle.lua: mtt bundles. sha256 against Python's hashlib; crafted archives
-- (Python's tarfile) with "../", absolute paths, symlinks, hardlinks, devices, fifos and
-- oversized members are refused whole; the round trip (a tiny training recipe packed with its
-- results, rerun in a clean folder: identical metrics), through the API and the mtt command;
-- tampered bundles fail naming the file; a sandboxed bundle cannot escape, a trusted one can;
-- two bundles sharing a big file store it once.
local mtt = require 'mtt'
local bundle = require 'mtt.bundle'
local bfs = require 'mtt.bundle.fs'
local archive = require 'mtt.bundle.archive'
local manifest = require 'mtt.bundle.manifest'
local cache = require 'mtt.bundle.cache'
local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')

local checker = testlib.checker('test_bundle')
local check = checker.check

local PY = '/usr/bin/python3'
local MTT = testlib.mtt_binary()
local cwd0 = bfs.getcwd()

local base = testlib.tmpdir()
cache.root = base .. '/cache'
local function write(path, text)
  mtt.io.makedirs(bfs.dirname(path))
  testlib.write(path, text)
end
local read = testlib.read
-- runs a shell command; its exit status and output (stdout and stderr)
local function sh(cmd)
  local p = io.popen('(' .. cmd .. ') 2>&1; echo "rc=$?"')
  local out = p:read('*a')
  p:close()
  local rc = tonumber(out:match('rc=(%d+)%s*$'))
  return rc, out
end
local function q(s) return "'" .. s .. "'" end

-- ---- sha256 against hashlib ----
do
  local samples = { '', 'abc', ('a'):rep(55), ('b'):rep(56), ('c'):rep(64), ('d'):rep(1000), 'caf\195\169\0\255' }
  local py = base .. '/sha.py'
  write(py, 'import hashlib, sys\nfor line in sys.stdin.buffer.read().split(b"\\n--\\n")[:-1]:\n' ..
    '    print(hashlib.sha256(bytes.fromhex(line.decode())).hexdigest())\n')
  local hexes = {}
  for i, s in ipairs(samples) do hexes[i] = (s:gsub('.', function(c) return string.format('%02x', c:byte()) end)) .. '\n--\n' end
  write(base .. '/sha.in', table.concat(hexes))
  local rc, out = sh(PY .. ' ' .. q(py) .. ' < ' .. q(base .. '/sha.in'))
  local i = 0
  for want in out:gmatch(('%x'):rep(64)) do
    i = i + 1
    if i <= #samples then check(bfs.sha256(samples[i]) == want, 'sha256 of sample ' .. i) end
  end
  check(rc == 0 and i == #samples, 'hashlib answered for every sample: ' .. out)
  local big = base .. '/big.bin'
  local parts = {}
  for k = 1, 3000 do parts[k] = string.format('%07d line of a bigger file\n', k * 7919 % 10007) end
  write(big, table.concat(parts))
  local rc2, out2 = sh(PY .. " -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],\"rb\").read()).hexdigest())' " .. q(big))
  local sha, size = bfs.sha256_file(big)
  check(rc2 == 0 and out2:sub(1, 64) == sha and size == #table.concat(parts), 'sha256 of a file (2 MiB chunks)')
end

-- ---- crafted archives: each refused whole, nothing written outside ----
do
  local py = base .. '/craft.py'
  write(py, [[
import io, sys, tarfile
out, kind = sys.argv[1], sys.argv[2]
def reg(t, name, data=b'x'):
    ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
with tarfile.open(out, 'w') as t:
    reg(t, 'MANIFEST.json', b'{}')
    reg(t, 'files/ok.txt')
    if kind == 'dotdot': reg(t, '../escaped.txt')
    elif kind == 'inner_dotdot': reg(t, 'files/../../escaped.txt')
    elif kind == 'absolute': reg(t, sys.argv[3] + '/escaped.txt')
    elif kind in ('symlink', 'symlink_then_file'):
        ti = tarfile.TarInfo('files/link'); ti.type = tarfile.SYMTYPE; ti.linkname = sys.argv[3]; t.addfile(ti)
        if kind == 'symlink_then_file': reg(t, 'files/link/escaped.txt')
    elif kind == 'hardlink':
        ti = tarfile.TarInfo('files/hard'); ti.type = tarfile.LNKTYPE; ti.linkname = sys.argv[3] + '/target.txt'; t.addfile(ti)
    elif kind == 'device':
        ti = tarfile.TarInfo('files/dev'); ti.type = tarfile.CHRTYPE; ti.devmajor = 1; ti.devminor = 3; t.addfile(ti)
    elif kind == 'fifo':
        ti = tarfile.TarInfo('files/fifo'); ti.type = tarfile.FIFOTYPE; t.addfile(ti)
    elif kind == 'big': reg(t, 'files/big.bin', b'0' * 5000)
    elif kind == 'total':
        for i in range(8): reg(t, 'files/part%d.bin' % i, b'1' * 900)
]])
  local victim = base .. '/victim'
  mtt.io.makedirs(victim)
  write(victim .. '/target.txt', 'outside')
  local cases = {
    { 'dotdot', "member '%.%./escaped%.txt' has a '%.%.' component" },
    { 'inner_dotdot', "member 'files/%.%./%.%./escaped%.txt' has a '%.%.' component" },
    { 'absolute', 'escaped%.txt\' is an absolute path' },
    { 'symlink', "member 'files/link' is a symlink %(to '.*victim'%)" },
    { 'symlink_then_file', "member 'files/link' is a symlink" },
    { 'hardlink', "member 'files/hard' is a hardlink %(to '.*target%.txt'%)" },
    { 'device', "member 'files/dev' is a device file" },
    { 'fifo', "member 'files/fifo' is a fifo" },
    { 'big', "member 'files/big%.bin' is 5000 bytes, over the limit of 4096 bytes" },
    { 'total', 'the members add up to more than the limit of 6000 bytes' },
  }
  for i, c in ipairs(cases) do
    local tar = string.format('%s/crafted-%s.tar', base, c[1])
    local rc, out = sh(string.format('%s %s %s %s %s', PY, q(py), q(tar), c[1], q(victim)))
    check(rc == 0, 'python built the crafted archive ' .. c[1] .. ': ' .. out)
    local dest = string.format('%s/x%d/a/b', base, i) -- "../" from here would land in x<i>/a
    mtt.io.makedirs(dest)
    local ok, err = pcall(archive.extract, tar, dest, { max_file = 4096, max_total = 6000 })
    check(not ok and tostring(err):find(c[2]) ~= nil, c[1] .. ': refused naming the member: ' .. tostring(err))
    check(#mtt.io.listdir(dest) == 0, c[1] .. ': nothing was unpacked (the archive is checked before any write)')
    check(not bfs.lstat(base .. '/x' .. i .. '/a/escaped.txt') and not bfs.lstat(base .. '/escaped.txt')
      and not bfs.lstat(victim .. '/escaped.txt'), c[1] .. ': nothing escaped')
    -- through the bundle API and the mtt command, the same refusal
    local ok2, err2 = pcall(bundle.unpack, { bundle = tar, out = base .. '/u' .. i, limits = { max_file = 4096, max_total = 6000 } })
    check(not ok2 and tostring(err2):find(c[2]) ~= nil, c[1] .. ': mtt.bundle.unpack refuses it too')
  end
  check(read(victim .. '/target.txt') == 'outside', 'the hardlink target is untouched')
  local rc, out = sh(string.format('cd %s && MTT_CACHE_DIR=%s %s unpack %s -o %s', q(base), q(base .. '/cache'), q(MTT),
    q(base .. '/crafted-dotdot.tar'), q(base .. '/cli-unpack')))
  check(rc == 1 and out:find("has a '..' component", 1, true), 'mtt unpack refuses ../ with exit status 1: ' .. out)
end

-- ---- the round trip: pack a tiny training run with its results, rerun it in a clean folder ----
local work = base .. '/work'
local tiny_recipe = [[
-- a tiny, deterministic run: a local module, a data file, a tokenizer, 12 training steps
local mtt = require 'mtt'
local helper = require 'helper'
local f = assert(io.open('data/corpus.txt', 'rb'))
local text = f:read('*a'); f:close()
local texts = {}
for line in text:gmatch('[^\n]+') do texts[#texts + 1] = line end
local tok = mtt.tokenizer.train { texts = texts, vocab_size = 300 }
local corpus = mtt.data.corpus { texts = texts, tokenizer = tok, block_size = 16, seed = 1, val_fraction = 0.1 }
mtt.manual_seed(helper.seed)
local model = mtt.nn.GPT { vocab_size = tok.vocab_size, n_positions = 16, n_embd = 32, n_layer = 1, n_head = 2 }
local res = mtt.train { model = model, data = corpus, run_dir = 'runs/tiny', steps = helper.steps, batch_size = 4,
  lr = 1e-2, log_every = 2, eval_every = 6, eval_batches = 2, seed = helper.seed, progress = false }
tok:save('runs/tiny/tokenizer.json')
return { loss = res.loss, tag = ... }
]]
do
  write(work .. '/tiny.lua', tiny_recipe)
  write(work .. '/helper.lua', 'return { steps = 12, seed = 7 }\n')
  local words = { 'the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'to', 'red', 'door', 'while', 'birds' }
  local lines, x = {}, 1
  for i = 1, 300 do
    local w = {}
    for j = 1, 12 do x = (x * 1103515245 + 12345) % 2147483648; w[j] = words[x % #words + 1] end
    lines[i] = table.concat(w, ' ')
  end
  write(work .. '/data/corpus.txt', table.concat(lines, '\n') .. '\n')
  bfs.chdir(work)
  local m = bundle.pack { recipe = 'tiny.lua', output = base .. '/tiny.mtt', results = 'runs/tiny', args = { 'A' }, quiet = true }
  local ok2, err2 = pcall(bundle.pack, { recipe = 'tiny.lua', output = base .. '/tiny2.mtt', args = { 'A' },
    quiet = true, results = 'runs/never-written' })
  bfs.chdir(cwd0)
  local names = {}
  for _, f in ipairs(m.files) do names[f.path] = f.role end
  check(names['files/tiny.lua'] == 'recipe' and names['files/helper.lua'] == 'input'
    and names['files/data/corpus.txt'] == 'input', 'traced inputs: recipe, required module, opened data file')
  check(names['results/runs/tiny/metrics.jsonl'] == 'result' and names['results/runs/tiny/tokenizer.json'] == 'result',
    'results packed')
  check(names['results/runs/tiny/ckpt/step-12.safetensors'] == nil, 'checkpoints only with checkpoints = true')
  local installed = false
  for p in pairs(names) do if p:find('lua/mtt/', 1, true) then installed = true end end
  check(not installed, 'the installed mtt is not packed')
  check(m.threads == mtt.threads() and m.args[1] == 'A' and m.seeds and m.seeds.seed == 7 and m.config.steps == 12,
    'manifest: threads, args, seeds and resolved config')
  check(m.returned and m.returned.tag == 'A', 'manifest: the recipe\'s returned values')
  check(not ok2 and tostring(err2):find('wrote no runs/never%-written'), 'pack: a results folder the run did not write')
end
do -- packing twice gives the same bytes (without results: those hold timings)
  bfs.chdir(work)
  local ok, err = pcall(bundle.pack, { recipe = 'tiny.lua', output = base .. '/no.mtt', results = 'runs/tiny', quiet = true })
  -- a run folder left by an earlier run: the checkpoint it resumes from is packed (what it read)
  local m0 = bundle.pack { recipe = 'tiny.lua', output = base .. '/inputs0.mtt', args = { 'A' }, quiet = true }
  os.rename(work .. '/runs', work .. '/runs-first')
  local m1 = bundle.pack { recipe = 'tiny.lua', output = base .. '/inputs1.mtt', args = { 'A' }, quiet = true }
  os.rename(work .. '/runs', work .. '/runs-second')
  local m2 = bundle.pack { recipe = 'tiny.lua', output = base .. '/inputs2.mtt', args = { 'A' }, quiet = true }
  bfs.chdir(cwd0)
  check(#m0.files == 4 and m0.files[3].path == 'files/runs/tiny/ckpt/step-12.safetensors',
    'an earlier run\'s checkpoint that the run resumes from is an input: ' .. #m0.files)
  check(#m1.files == 3 and #m2.files == 3, 'a fresh run: the 3 inputs: ' .. #m1.files .. ' ' .. #m2.files)
  check(bfs.sha256_file(base .. '/inputs1.mtt') == bfs.sha256_file(base .. '/inputs2.mtt'),
    'packing the same recipe twice gives the same bundle, byte for byte')
  check(not ok and tostring(err):find('runs/tiny exists'), 'pack refuses an existing results folder: ' .. tostring(err))
end
do -- with checkpoints: packed as such, and stored as blobs when unpacked
  os.rename(work .. '/runs', work .. '/runs-third')
  bfs.chdir(work)
  local m = bundle.pack { recipe = 'tiny.lua', output = base .. '/tiny-ckpt.mtt', results = 'runs/tiny', args = { 'A' },
    checkpoints = true, quiet = true }
  bfs.chdir(cwd0)
  local ck
  for _, f in ipairs(m.files) do if f.path == 'results/runs/tiny/ckpt/step-12.safetensors' then ck = f end end
  check(ck and ck.role == 'checkpoint', 'checkpoints = true packs the checkpoint')
  local saved = cache.MIN_BLOB
  cache.MIN_BLOB = 100000
  local dir = cache.unpacked(base .. '/tiny-ckpt.mtt')
  cache.MIN_BLOB = saved
  local _, _, ino, nlink = bfs.lstat(dir .. '/' .. ck.path)
  local _, _, ino_blob = bfs.lstat(cache.dir() .. '/blobs/' .. ck.sha256)
  check(ino == ino_blob and nlink == 2, 'the unpacked checkpoint is its blob')
end
do -- rerun through the API: identical metrics
  local r = bundle.run { bundle = base .. '/tiny.mtt', out = base .. '/rerun1', quiet = true }
  check(#r.compared == 1 and r.compared[1].file == 'runs/tiny/metrics.jsonl' and #r.compared[1].diffs == 0 and r.same,
    'rerun in a clean folder: identical metrics.jsonl')
  local packed = read(r.dir .. '/results/runs/tiny/metrics.jsonl')
  local again = read(base .. '/rerun1/runs/tiny/metrics.jsonl')
  local function strip(s) return (s:gsub(',"tokens_per_s":[^,}]+', ''):gsub(',"elapsed":[^,}]+', '')) end
  check(packed and again and #packed > 100 and strip(packed) == strip(again),
    'the metrics text is identical but for elapsed and tokens_per_s')
  check(read(base .. '/rerun1/runs/tiny/tokenizer.json') == read(r.dir .. '/results/runs/tiny/tokenizer.json'),
    'the rerun wrote the same tokenizer')
  -- a different record is reported, naming the field
  local changed = again:gsub('"loss":([%d.]+)', function(v) return '"loss":' .. string.format('%.17g', tonumber(v) + 1e-9) end, 1)
  write(base .. '/changed.jsonl', changed)
  local diffs = bundle.compare.metrics(r.dir .. '/results/runs/tiny/metrics.jsonl', base .. '/changed.jsonl')
  check(#diffs == 1 and diffs[1]:find('record 1 %(step 2%): loss = '), 'a changed loss is a difference: ' .. tostring(diffs[1]))
  local ok, err = pcall(bundle.run, { bundle = base .. '/tiny.mtt', out = base .. '/rerun1', quiet = true })
  check(not ok and tostring(err):find('not empty'), 'run refuses a used output folder')
end
do -- through the mtt command: run, verify, verify --rerun, unpack
  local env = 'MTT_CACHE_DIR=' .. q(base .. '/cache') .. ' '
  local rc, out = sh(env .. q(MTT) .. ' run ' .. q(base .. '/tiny.mtt') .. ' -o ' .. q(base .. '/rerun-cli'))
  check(rc == 0 and out:find('same: runs/tiny/metrics.jsonl', 1, true) and out:find('sandboxed', 1, true),
    'mtt run X.mtt: sandboxed, same metrics: ' .. out)
  rc, out = sh(env .. q(MTT) .. ' verify ' .. q(base .. '/tiny.mtt'))
  check(rc == 0 and out:find('ok: .*6 files match the manifest'), 'mtt verify: ' .. out)
  rc, out = sh(env .. q(MTT) .. ' verify --rerun ' .. q(base .. '/tiny.mtt'))
  check(rc == 0 and out:find('same: runs/tiny/metrics.jsonl', 1, true), 'mtt verify --rerun: ' .. out)
  rc, out = sh(env .. q(MTT) .. ' unpack ' .. q(base .. '/tiny.mtt') .. ' -o ' .. q(base .. '/unpacked'))
  check(rc == 0 and read(base .. '/unpacked/files/tiny.lua') == tiny_recipe, 'mtt unpack: ' .. out)
  rc, out = sh(env .. q(MTT) .. ' pack')
  check(rc == 2 and out:find('usage: mtt pack', 1, true), 'mtt pack without arguments prints the usage')
end

-- ---- tampering ----
-- bundle(path, files, opts): a bundle written by hand: files = {{name, text}, ...}; the manifest
-- is made from `listed` (default: the files themselves) so that it can lie.
local function handmade(path, files, recipe, listed, extra)
  local w = archive.writer(path)
  local m = { format = manifest.FORMAT, recipe = recipe, args = {}, threads = mtt.threads(), files = {} }
  for k, v in pairs(extra or {}) do m[k] = v end
  for _, f in ipairs(listed or files) do
    m.files[#m.files + 1] = { path = f[1], sha256 = bfs.sha256(f[2]), size = #f[2], role = f[1] == 'files/' .. recipe
      and 'recipe' or 'input' }
  end
  w:add_bytes(manifest.NAME, manifest.encode(m))
  for _, f in ipairs(files) do w:add_bytes(f[1], f[2]) end
  w:close()
end
do
  local good = { { 'files/r.lua', 'return 1' }, { 'files/data.txt', 'the data' } }
  local bad = { { 'files/r.lua', 'return 1' }, { 'files/data.txt', 'the dat4' } }
  handmade(base .. '/tampered.mtt', bad, 'r.lua', good)
  local ok, err = pcall(bundle.verify, { bundle = base .. '/tampered.mtt' })
  check(not ok and tostring(err):find("'files/data.txt' does not match the manifest", 1, true),
    'a changed file fails the manifest check, named: ' .. tostring(err))
  ok, err = pcall(bundle.run, { bundle = base .. '/tampered.mtt', out = base .. '/t-out', quiet = true })
  check(not ok and tostring(err):find('files/data.txt', 1, true) and not bfs.lstat(base .. '/t-out'),
    'a tampered bundle does not run')
  local extra = { { 'files/r.lua', 'return 1' }, { 'files/data.txt', 'the data' }, { 'files/extra.lua', 'x' } }
  handmade(base .. '/extra.mtt', extra, 'r.lua', good)
  ok, err = pcall(bundle.verify, { bundle = base .. '/extra.mtt' })
  check(not ok and tostring(err):find("'files/extra.lua' is in the bundle but not in the manifest", 1, true),
    'an added file is refused: ' .. tostring(err))
  handmade(base .. '/missing.mtt', { good[1] }, 'r.lua', good)
  ok, err = pcall(bundle.verify, { bundle = base .. '/missing.mtt' })
  check(not ok and tostring(err):find("'files/data.txt' is in the manifest but not in the bundle", 1, true),
    'a removed file is refused: ' .. tostring(err))
  local rc, out = sh('MTT_CACHE_DIR=' .. q(base .. '/cache') .. ' ' .. q(MTT) .. ' verify ' .. q(base .. '/tampered.mtt'))
  check(rc == 1 and out:find('files/data.txt', 1, true), 'mtt verify exits 1 naming the file: ' .. out)
  -- a file changed in the cache after unpacking is caught on the next use
  local dir = cache.unpacked(base .. '/tiny.mtt')
  local victim = dir .. '/files/data/corpus.txt'
  local text = read(victim)
  os.remove(victim)
  write(victim, text:gsub('cat', 'bat', 1))
  ok, err = pcall(bundle.run, { bundle = base .. '/tiny.mtt', out = base .. '/t-out2', quiet = true })
  check(not ok and tostring(err):find("'files/data/corpus.txt' does not match the manifest", 1, true),
    'a file changed in the cache is caught: ' .. tostring(err))
  bfs.rmtree(dir)
end

-- ---- a bundle from someone else: sandboxed unless trusted ----
do
  local pwned = base .. '/pwned'
  local evil = "os.execute('touch " .. pwned .. "'); return true\n"
  handmade(base .. '/evil.mtt', { { 'files/evil.lua', evil } }, 'evil.lua')
  local env = 'MTT_CACHE_DIR=' .. q(base .. '/cache') .. ' '
  local rc, out = sh(env .. q(MTT) .. ' run ' .. q(base .. '/evil.mtt') .. ' -o ' .. q(base .. '/evil-out'))
  check(rc == 1 and out:find('os.execute is not available', 1, true) and not bfs.lstat(pwned),
    'a bundle\'s os.execute is refused: ' .. out)
  rc, out = sh(env .. q(MTT) .. ' run --trust ' .. q(base .. '/evil.mtt') .. ' -o ' .. q(base .. '/evil-out2'))
  check(rc == 0 and bfs.lstat(pwned) == 'file', '--trust lifts the sandbox: ' .. out)
  local writer = "local f = assert(io.open('" .. base .. "/written-outside', 'w')); f:write('x'); f:close()\n"
  handmade(base .. '/writer.mtt', { { 'files/w.lua', writer } }, 'w.lua')
  rc, out = sh(env .. q(MTT) .. ' run ' .. q(base .. '/writer.mtt') .. ' -o ' .. q(base .. '/w-out'))
  check(rc == 1 and out:find('is outside the run folder', 1, true) and not bfs.lstat(base .. '/written-outside'),
    'a bundle cannot write outside its run folder: ' .. out)
  -- code left to run after the recipe (a finalizer at exit, an error's __tostring) meets the
  -- policy still: the mtt command seals the process for a sandboxed bundle
  local late = "local p = newproxy(true); getmetatable(p).__gc = function() " ..
    "local f = io.open('" .. base .. "/late-gc', 'w'); if f then f:write('x'); f:close() end; " ..
    "require('mtt').io.save_safetensors('" .. base .. "/late-gc.safetensors', {x = require('mtt').zeros(1)}) end; " ..
    "KEEP = p; error(setmetatable({}, {__tostring = function() " ..
    "require('mtt').io.makedirs('" .. base .. "/late-tostring'); return 'custom error' end}))\n"
  handmade(base .. '/late.mtt', { { 'files/late.lua', late } }, 'late.lua')
  rc, out = sh(env .. q(MTT) .. ' run ' .. q(base .. '/late.mtt') .. ' -o ' .. q(base .. '/late-out'))
  check(rc == 1 and not bfs.lstat(base .. '/late-gc') and not bfs.lstat(base .. '/late-gc.safetensors')
    and not bfs.lstat(base .. '/late-tostring'), 'finalizers and __tostring after the run stay sandboxed: ' .. out)
  -- installed data the packed run read, changed since: a note
  local init_sha = bfs.sha256_file(mtt.root .. '/lua/mtt/init.lua')
  handmade(base .. '/inst.mtt', { { 'files/i.lua', 'return 1' } }, 'i.lua', nil, { installed = {
    { path = '<mtt>/lua/mtt/init.lua', sha256 = init_sha, size = 1 },
    { path = '<mtt>/build/data/corpus/bible.txt', sha256 = ('0'):rep(64), size = 1 } } })
  rc, out = sh(env .. q(MTT) .. ' run ' .. q(base .. '/inst.mtt') .. ' -o ' .. q(base .. '/inst-out'))
  check(rc == 0 and out:find('note: <mtt>/build/data/corpus/bible.txt differs', 1, true)
    and not out:find('init.lua differs', 1, true), 'changed installed data is noted: ' .. out)
  local changer = "local f = assert(io.open('w.lua', 'w')); f:write('changed'); f:close()\n"
  handmade(base .. '/changer.mtt', { { 'files/w.lua', changer } }, 'w.lua')
  rc, out = sh(env .. q(MTT) .. ' run ' .. q(base .. '/changer.mtt') .. ' -o ' .. q(base .. '/c-out'))
  check(rc == 1 and out:find('is a file of the bundle', 1, true), 'a bundle cannot change its own inputs: ' .. out)
end

-- ---- Landlock: the process the mtt command runs a bundle in is confined by the kernel too ----
do
  local abi = bfs.landlock_abi()
  local lw, lo = base .. '/ll-run', base .. '/ll-outside'
  mtt.io.makedirs(lw); mtt.io.makedirs(lo)
  -- trusted code that confines itself and then tries the raw routes the Lua sandbox would have
  -- refused (as code that got around it could)
  local probe = base .. '/ll-probe.lua'
  write(probe, string.format([[
local fs = require 'mtt.bundle.fs'
local abi = fs.confine { write = { %q }, read = { %q, require('mtt').root .. '/lua', '/usr', '/lib', '/lib64', '/proc' } }
print('abi', abi)
local f = io.open(%q, 'w'); print('inside', f ~= nil); if f then f:close() end
local g, err = io.open(%q, 'w'); print('outside', g ~= nil, err)
local r = io.open(%q, 'r'); print('read outside', r ~= nil)
print('exec', os.execute('true'))
]], lw, lw, lw .. '/ok.txt', lo .. '/no.txt', base .. '/tiny.mtt'))
  local rc, out = sh(q(MTT) .. ' run ' .. q(probe))
  if abi > 0 then
    check(rc == 0 and out:find('abi\t' .. abi, 1, true) and out:find('inside\ttrue', 1, true), 'confined: writes in the run folder work: ' .. out)
    check(out:find('outside\tfalse\t.*Permission denied') and not bfs.lstat(lo .. '/no.txt'), 'confined: a raw write outside is denied by the kernel')
    check(out:find('read outside\tfalse', 1, true), 'confined: a raw read outside is denied by the kernel')
    check(not out:find('exec\t0', 1, true) and not out:find('exec\ttrue', 1, true), 'confined: no program can be executed: ' .. out)
    rc, out = sh('MTT_CACHE_DIR=' .. q(base .. '/cache') .. ' ' .. q(MTT) .. ' run ' .. q(base .. '/tiny.mtt') .. ' -o ' .. q(base .. '/ll-rerun'))
    check(rc == 0 and out:find('confined by Landlock', 1, true) and out:find('same: runs/tiny', 1, true),
      'mtt run X.mtt runs confined and still reproduces: ' .. out)
  else
    -- a kernel without Landlock: confine does nothing and says so; the run says it relies on Lua alone
    check(rc == 0 and out:find('abi\t0', 1, true), 'no Landlock: confine returns 0: ' .. out)
    rc, out = sh('MTT_CACHE_DIR=' .. q(base .. '/cache') .. ' ' .. q(MTT) .. ' run ' .. q(base .. '/tiny.mtt') .. ' -o ' .. q(base .. '/ll-rerun'))
    check(rc == 0 and out:find('has no Landlock', 1, true), 'no Landlock: mtt run says so: ' .. out)
  end
  print(string.format('test_bundle: Landlock ABI %d in this kernel (%s)', abi, abi > 0 and 'confinement checked' or 'none: the fallback checked'))
end

-- ---- the cache: a big file shared by two bundles is stored once ----
do
  local saved = cache.MIN_BLOB
  cache.MIN_BLOB = 1000
  local big = ('0123456789abcdef'):rep(200) -- 3,200 bytes: a "checkpoint"
  handmade(base .. '/share1.mtt', { { 'files/a.lua', 'return 1' }, { 'files/ckpt.bin', big } }, 'a.lua')
  handmade(base .. '/share2.mtt', { { 'files/b.lua', 'return 2' }, { 'files/ckpt.bin', big } }, 'b.lua')
  local d1 = cache.unpacked(base .. '/share1.mtt')
  local d2 = cache.unpacked(base .. '/share2.mtt')
  local _, s1, ino1, n1 = bfs.lstat(d1 .. '/files/ckpt.bin')
  local _, s2, ino2 = bfs.lstat(d2 .. '/files/ckpt.bin')
  local blob = cache.dir() .. '/blobs/' .. bfs.sha256(big)
  local _, _, ino_blob = bfs.lstat(blob)
  check(d1 ~= d2 and s1 == #big and s2 == #big, 'two bundles unpacked apart')
  check(ino1 == ino2 and ino1 == ino_blob and n1 >= 3, 'the shared file is one inode (the blob): ' ..
    tostring(ino1) .. ' ' .. tostring(ino2) .. ' ' .. tostring(ino_blob) .. ' links ' .. tostring(n1))
  local n_blobs = #mtt.io.listdir(cache.dir() .. '/blobs')
  local _, _, ino_small = bfs.lstat(d1 .. '/files/a.lua')
  check(ino_small ~= ino1 and n_blobs >= 1, 'small files stay plain files')
  -- a run links the big input from the blob, and copies the small ones
  local r = bundle.run { bundle = base .. '/share1.mtt', out = base .. '/share-run', quiet = true }
  local _, _, ino_run = bfs.lstat(r.out .. '/ckpt.bin')
  check(ino_run == ino_blob, 'the run folder links the big input too')
  cache.MIN_BLOB = saved
end

bfs.rmtree(base)
checker.done()
