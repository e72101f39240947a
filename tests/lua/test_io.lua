-- test_io.lua: safetensors against a PyTorch-based reference (tests/reference/safetensors_io.py)
-- in both directions, bit for bit; corrupt and truncated files refused with messages naming the
-- file and the problem (hand-made cases, every truncation, random byte damage); archive members
-- and compressed files (made with Debian's tar, gzip, xz, zstd, bzip2, zip) streamed back
-- byte-identical; the small file-system calls.
local cjson = require 'cjson'
local mtt = require 'mtt'
local mio = mtt.io

local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')
local checker = testlib.checker('test_io', { stop = true })
local check, expect_error = checker.check, checker.expect_error
local sh, read, write = testlib.must_sh, testlib.must_read, testlib.write
local bytes_of = testlib.tensor_bytes
local function hex(s) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end)) end

local PY = '/usr/bin/python3 tests/reference/safetensors_io.py'
local dir = testlib.tmpdir()

local dtype_of = { F32 = 'f32', F64 = 'f64', I32 = 'i32', BF16 = 'bf16', F16 = 'f16' }

-- ---- 1. reference -> mtt ----
-- (first, tensors made by mtt (views included) are saved, for the same Python run to read)
local gen = mtt.Generator(7)
local base = mtt.randn({ 6, 5 }, { generator = gen })
local own = {
  ['w.f32'] = mtt.randn({ 5, 7 }, { generator = gen }),
  ['w.f64'] = mtt.randn({ 3, 2, 2 }, { generator = gen, dtype = 'f64' }),
  ids = mtt.tensor({ -7, 0, 5, 2147483647, -2147483648, 42 }, { dtype = 'i32' }),
  transposed = base:t(),                   -- non-contiguous
  narrowed = base:narrow(1, 2, 3),          -- offset into storage
  strided = base:slice(2, 1, 5, 2),         -- every other column
  scalar = mtt.tensor(-1.25),
  empty = mtt.zeros(0, 4, { dtype = 'f64' }),
  grad = mtt.randn({ 4 }, { generator = gen }):requires_grad(), -- parameters save as plain data
}
local own_path = dir .. '/own.safetensors'
mio.save_safetensors(own_path, own, { created_by = 'mtt', ['tab\tkey'] = 'v' })
-- one Python run writes the reference files and reads mtt's (importing torch is slow)
sh(string.format('%s make %s dump %s %s', PY, dir, own_path, dir .. '/own.json'))
local expected = cjson.decode(read(dir .. '/expected.json'))
local ref_path = dir .. '/ref.safetensors'
local ref_bytes = read(ref_path)
local tensors, md, names = mio.load_safetensors(ref_path)
local n_ref = 0
for name, e in pairs(expected) do
  if not name:find('/') then
    n_ref = n_ref + 1
    local t = tensors[name]
    check(t ~= nil, 'missing tensor ' .. name)
    check(t.dtype == dtype_of[e.dtype], name .. ': dtype ' .. t.dtype)
    check(table.concat(t:shape(), ',') == table.concat(e.shape, ','), name .. ': shape')
    check(hex(bytes_of(t)) == e.hex, name .. ': bytes differ from the reference')
    -- converted loads: as torch converts (exact widening; f64 -> f32 rounds to nearest even)
    local f = mio.open_safetensors(ref_path)
    check(hex(bytes_of(f:tensor(name, 'f64'))) == (t.dtype == 'i32' and e.hex or e.f64hex), name .. ': f64 conversion')
    if t.dtype ~= 'i32' then check(hex(bytes_of(f:tensor(name, 'f32'))) == e.f32hex, name .. ': f32 conversion') end
    f:close()
  end
end
check(n_ref == 13, 'expected 13 reference tensors, got ' .. n_ref)
local n_md = 0
for _ in pairs(md) do n_md = n_md + 1 end
check(n_md == 3 and md.format == 'pt' and md.empty == '' and md.note == 'line\nbreak "quoted" \195\169\226\130\172 \t tab',
  'metadata differs: ' .. cjson.encode(md))
-- names in file order: largest alignment first (F64, F32, I32, BF16, F16), then by name
check(names[1] == 'a.1x1x1' and names[2] == 'f64.values' and names[#names] == 'f16.values',
  'file order: ' .. table.concat(names, ' '))

-- memory-mapped privately: writing a loaded tensor leaves the file alone
tensors['transformer.wte.weight']:mul_(3)
tensors['f32.special']:fill_(0)
check(read(ref_path) == ref_bytes, 'writing into a loaded tensor changed the file')
local again = mio.load_safetensors(ref_path)
check(hex(bytes_of(again['f32.special'])) == expected['f32.special'].hex, 'a fresh load sees the in-place write')
tensors, again = nil, nil
collectgarbage()

-- integer and bool dtypes become i32, values exact
local ints = mio.load_safetensors(dir .. '/ints.safetensors')
for _, name in ipairs({ 'i64', 'i16', 'i8', 'u8', 'bool' }) do
  local e, t = expected['ints/' .. name], ints[name]
  check(t.dtype == 'i32' and table.concat(t:shape(), ',') == table.concat(e.shape, ','), name .. ': dtype/shape')
  local flat = t:reshape(-1):totable()
  for i, v in ipairs(e.values) do check(flat[i] == v, string.format('%s[%d] = %s, expected %s', name, i, flat[i], v)) end
end
expect_error('i64 outside i32', { 'i64_range.safetensors', "'big'", 'i32 range' }, mio.load_safetensors,
  dir .. '/i64_range.safetensors')

-- a file whose writer did not align its data: loaded by copying
local un = mio.load_safetensors(dir .. '/unaligned.safetensors')
check(hex(bytes_of(un.x)) == '003c00400042', 'unaligned f16 bytes: ' .. hex(bytes_of(un.x)))
check(un.y:totable()[1] == 0.5 and un.y:totable()[2] == -7.25, 'unaligned f32 values')

-- ---- 2. mtt -> reference ----
-- tensors made by mtt (views included), as the reference read them
local dump = cjson.decode(read(dir .. '/own.json'))
for name, t in pairs(own) do
  local d = dump.tensors[name]
  check(d ~= nil, 'reference misses ' .. name)
  check(dtype_of[d.dtype] == t.dtype, name .. ': dtype ' .. d.dtype)
  check(table.concat(d.shape, ',') == table.concat(t:shape(), ','), name .. ': shape')
  check(d.hex == hex(bytes_of(t)), name .. ': the reference reads different bits')
end
check(dump.metadata.created_by == 'mtt' and dump.metadata['tab\tkey'] == 'v', 'metadata as read by the reference')


-- the reference tensors written back by mtt: laid out as the reference writer does, same bits
local back = dir .. '/back.safetensors'
local loaded, lmd = mio.load_safetensors(ref_path)
mio.save_safetensors(back, loaded, lmd)
sh(string.format('%s check %s %s', PY, back, ref_path))
check(read(back) == ref_bytes, 'mtt rewrote the reference file with different bytes')
-- the list form {{name, tensor}, ...} writes the same file
local list = {}
for name, t in pairs(loaded) do list[#list + 1] = { name, t } end
mio.save_safetensors(back, list, lmd)
check(read(back) == ref_bytes, 'the list form wrote different bytes')
loaded = nil

-- byte layout of the format's own examples: one tensor, no metadata; nothing at all
local attn = mtt.arange(0, 6):view(1, 2, 3)
mio.save_safetensors(dir .. '/attn.safetensors', { ['attn.0'] = attn })
local h = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'
check(#h == 64, 'example header length')
check(read(dir .. '/attn.safetensors') == string.char(64, 0, 0, 0, 0, 0, 0, 0) .. h .. bytes_of(attn), 'attn.0 bytes')
mio.save_safetensors(dir .. '/none.safetensors', {})
check(read(dir .. '/none.safetensors') == string.char(8, 0, 0, 0, 0, 0, 0, 0) .. '{}      ', 'empty file bytes')
local none, none_md = mio.load_safetensors(dir .. '/none.safetensors')
check(next(none) == nil and next(none_md) == nil, 'empty file loads empty')

-- writing: refused inputs, and a failed write leaves no file
expect_error('duplicate names', { 'own2', "'a'", 'twice' }, mio.save_safetensors, dir .. '/own2.safetensors',
  { { 'a', base }, { 'a', base } })
check(not mio.stat(dir .. '/own2.safetensors'), 'a refused save left a file')
local freed = mtt.zeros(3)
freed:free()
expect_error('freed tensor', { "'gone'", 'freed' }, mio.save_safetensors, dir .. '/own2.safetensors', { gone = freed })
expect_error('bad utf-8 name', { 'UTF-8' }, mio.save_safetensors, dir .. '/own2.safetensors', { ['\255x'] = base })
expect_error('metadata name', { '__metadata__' }, mio.save_safetensors, dir .. '/own2.safetensors',
  { __metadata__ = base })
expect_error('metadata value type', { 'metadata' }, mio.save_safetensors, dir .. '/own2.safetensors', {}, { n = 3 })
expect_error('missing folder', { 'no/such/dir', 'No such file' }, mio.save_safetensors, dir .. '/no/such/dir/x.safetensors', {})
expect_error('unknown option', { 'durabel' }, mio.save_safetensors, dir .. '/x.safetensors', {}, nil, { durabel = true })
-- overwriting is atomic: a failing save keeps the old file
mio.save_safetensors(back, { ok = base }, nil, { durable = true })
local before = read(back)
expect_error('failing overwrite', { 'freed' }, mio.save_safetensors, back, { ok = base, gone = freed })
check(read(back) == before, 'a failed overwrite changed the existing file')
for _, name in ipairs(mio.listdir(dir)) do check(not name:find('%.tmp%-'), 'temporary file left: ' .. name) end

-- ---- 3. corrupt and truncated files ----
local function st_file(header, data)
  local n = #header
  local len = string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256, 0, 0, 0, 0, 0)
  return len .. header .. (data or '')
end
local bad = dir .. '/bad.safetensors'
local function refused(what, content, pieces)
  write(bad, content)
  local all = { 'bad.safetensors' }
  for _, p in ipairs(pieces) do all[#all + 1] = p end
  expect_error(what, all, mio.load_safetensors, bad)
end
local f8 = string.rep('\0', 8)
refused('empty file', '', { 'too few' })
refused('not json', st_file('hello   '), { 'bad header', 'invalid JSON' })
refused('json array', st_file('[]      '), { 'JSON object' })
refused('unknown dtype', st_file('{"a":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}}', f8), { "'a'", "unknown dtype 'F7'" })
refused('negative size', st_file('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', f8), { 'negative' })
refused('fractional size', st_file('{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', f8), { 'fraction' })
refused('offsets past the data', st_file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', '1234'),
  { "'a'", 'past the end of the data', 'truncated' })
refused('size mismatch', st_file('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', f8), { "'a'", 'needs 12 bytes', 'hold 8' })
refused('reversed offsets', st_file('{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}', f8), { 'reversed' })
refused('overlap', st_file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', f8 .. '1234'),
  { "'a'", "'b'", 'overlap' })
refused('gap', st_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', f8 .. '1234'),
  { '4 unused bytes', "'b'" })
refused('bytes after the last tensor', st_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f8), { '4 bytes after the last tensor' })
refused('duplicate name', st_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f8),
  { "'a'", 'twice' })
refused('duplicate field', st_file('{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', '1234'), { 'twice' })
refused('missing field', st_file('{"a":{"dtype":"F32","shape":[1]}}', '1234'), { "lacks 'data_offsets'" })
refused('three offsets', st_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}', '1234'), { 'two numbers' })
refused('metadata not a string', st_file('{"__metadata__":{"k":1}}'), { "'k'", 'not a string' })
refused('metadata twice', st_file('{"__metadata__":{},"__metadata__":{}}'), { 'twice' })
refused('nine dims', st_file('{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}', '1234'), { 'at most 8' })
refused('invalid utf-8', st_file('{"a\255":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', '1234'), { 'UTF-8' })
refused('NUL escape', st_file('{"a\\u0000":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', '1234'), { 'NUL' })
refused('bytes after the JSON', st_file('{}  x    '), { 'unexpected bytes after' })
refused('header past the file', string.char(255, 255, 0, 0, 0, 0, 0, 0) .. '{}', { 'header length 65535', 'past the end of the file' })
refused('header over the limit', string.char(0, 0, 0, 0, 1, 0, 0, 0) .. string.rep(' ', 16), { 'past the end of the file' })
refused('overflowing shape', st_file('{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}', f8), { 'overflows' })
refused('unterminated string', st_file('{"a'), { 'unterminated' })
refused('bad escape', st_file('{"a\\q":1}'), { 'unknown escape' })
expect_error('missing file', { 'nothere.safetensors', 'No such file' }, mio.load_safetensors, dir .. '/nothere.safetensors')
expect_error('a folder', { 'not a regular file' }, mio.load_safetensors, dir)
-- valid oddities: unknown fields are skipped (as the reference does), whitespace is allowed
write(bad, st_file(' { "a" : { "extra" : [1, {"x": null}, true, -2.5e3], "dtype" : "F32", "shape" : [ 1 ],\n "data_offsets" : [ 0 , 4 ] } } ', '\0\0\128\63'))
check(mio.load_safetensors(bad).a:item() == 1, 'unknown fields and whitespace')
-- dtypes of the format mtt cannot hold are refused by name (the rest of the file is fine)
write(bad, st_file('{"q":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}', '1234'))
local q = mio.open_safetensors(bad)
check(q:info('q').dtype == 'F8_E4M3' and q:info('q').shape[1] == 4, 'info of an F8 tensor')
expect_error('F8 tensor', { "'q'", 'F8_E4M3', 'cannot hold' }, q.tensor, q, 'q')
expect_error('no such tensor', { "'nope'" }, q.tensor, q, 'nope')
q:close()

-- every truncation of a valid file is refused, naming the file
local small = read(dir .. '/attn.safetensors')
for n = 0, #small - 1 do
  write(bad, small:sub(1, n))
  local ok, err = pcall(mio.load_safetensors, bad)
  check(not ok and tostring(err):find('bad.safetensors', 1, true), 'truncated to ' .. n .. ' bytes: ' .. tostring(err))
end
-- random damage to the header: loads or is refused, never crashes; whatever loads is consistent
math.randomseed(12345)
local loaded_ok, refused_n = 0, 0
local hlen = 8 + ref_bytes:byte(1) + 256 * ref_bytes:byte(2)
local json_chars = '{}[]":,0123456789 '
for i = 1, 400 do
  local b = { ref_bytes:byte(1, -1) }
  for _ = 1, 1 + i % 3 do
    local pos = math.random(1, hlen)
    local pick = math.random(1, #json_chars)
    b[pos] = (i % 2 == 0) and math.random(0, 255) or json_chars:byte(pick)
  end
  local s = {}
  for k = 1, #b, 4096 do s[#s + 1] = string.char(unpack(b, k, math.min(k + 4095, #b))) end
  write(bad, table.concat(s))
  local ok, r = pcall(mio.load_safetensors, bad)
  if ok then
    loaded_ok = loaded_ok + 1
    for _, t in pairs(r) do check(#bytes_of(t) == t:numel() * t:element_size(), 'inconsistent tensor') end
  else
    refused_n = refused_n + 1
    check(tostring(r):find('bad.safetensors', 1, true), 'damaged file error without its name: ' .. tostring(r))
  end
end
check(refused_n > 200, 'random damage: only ' .. refused_n .. ' refusals')
print(string.format('random header damage: %d refused, %d still valid', refused_n, loaded_ok))

-- ---- 4. archives and compressed files ----
local src = dir .. '/src'
mio.makedirs(src .. '/sub/deeper')
local files = {
  ['a.txt'] = 'hello\nworld\n',
  ['sub/b.jsonl'] = '{"text": "first doc"}\r\n{"text": "second \\u00e9"}\n\n{"text": "no newline at end"}',
  ['sub/deeper/empty.txt'] = '',
}
local bin = {}
for i = 0, 255 do bin[#bin + 1] = string.char(i) end
files['bin.dat'] = string.rep(table.concat(bin), 64)
local lines = {}
local rnd = 1
for i = 1, 60000 do
  rnd = (rnd * 1103515245 + 12345) % 2147483648
  lines[i] = string.format('line %d %d %s', i, rnd, string.rep('x', rnd % 40))
end
files['big.txt'] = table.concat(lines, '\n') .. '\n'
check(#files['big.txt'] > 2 * 2 ^ 20, 'big.txt must span several read chunks')
for name, content in pairs(files) do write(src .. '/' .. name, content) end

local function members(path)
  local got, order = {}, {}
  for name, bytes in mio.entries(path) do
    check(got[name] == nil, path .. ': member listed twice: ' .. name)
    got[name] = bytes
    order[#order + 1] = name
  end
  return got, order
end

local function same_members(path, want)
  local got = members(path)
  for name, content in pairs(want) do
    check(got[name] ~= nil, path .. ': member ' .. name .. ' missing')
    check(got[name] == content, path .. ': member ' .. name .. ' differs (' .. #(got[name] or '') .. ' vs ' .. #content .. ' bytes)')
  end
  for name in pairs(got) do check(want[name] ~= nil, path .. ': unexpected member ' .. name) end
end

local q_src = "'" .. src .. "'"
sh(string.format('cd %s && tar cf ../a.tar a.txt sub bin.dat big.txt', q_src))
sh(string.format('cd %s && tar czf ../a.tar.gz a.txt sub bin.dat big.txt', q_src))
sh(string.format('cd %s && XZ_OPT=-1 tar cJf ../a.tar.xz a.txt sub bin.dat big.txt', q_src))
sh(string.format('cd %s && tar --zstd -cf ../a.tar.zst a.txt sub bin.dat big.txt', q_src))
sh(string.format('cd %s && tar cjf ../a.tar.bz2 a.txt sub bin.dat big.txt', q_src))
sh(string.format('cd %s && zip -q -r ../a.zip a.txt sub bin.dat big.txt', q_src))
for _, ext in ipairs({ 'tar', 'tar.gz', 'tar.xz', 'tar.zst', 'tar.bz2', 'zip' }) do
  same_members(dir .. '/a.' .. ext, files)
end
local r = mio.open_archive(dir .. '/a.tar.zst')
local first = r:next()
check(r.format == 'tar' and first ~= nil, 'format of a.tar.zst: ' .. tostring(r.format))
r:close()

-- single files, plain and compressed: one member named after the file
sh(string.format('cp %s/big.txt %s/big.txt.copy && gzip -k -c %s/big.txt > %s/big.txt.gz', q_src, dir, q_src, dir))
sh(string.format('xz -1 -c %s/big.txt > %s/big.txt.xz && zstd -q -c %s/big.txt > %s/big.txt.zst', q_src, dir, q_src, dir))
sh(string.format('bzip2 -k -c %s/sub/b.jsonl > %s/b.jsonl.bz2', q_src, dir))
same_members(src .. '/big.txt', { ['big.txt'] = files['big.txt'] })
same_members(dir .. '/big.txt.gz', { ['big.txt'] = files['big.txt'] })
same_members(dir .. '/big.txt.xz', { ['big.txt'] = files['big.txt'] })
same_members(dir .. '/big.txt.zst', { ['big.txt'] = files['big.txt'] })
same_members(dir .. '/b.jsonl.bz2', { ['b.jsonl'] = files['sub/b.jsonl'] })
same_members(src .. '/bin.dat', { ['bin.dat'] = files['bin.dat'] })
same_members(src .. '/sub/deeper/empty.txt', {})

-- lines, streamed across chunks, "\r\n" and a last line without "\n"
local n = 0
for line, member, lineno in mio.lines(dir .. '/big.txt.zst') do
  n = n + 1
  check(member == 'big.txt' and lineno == n and line == lines[n], 'line ' .. n .. ' differs')
end
check(n == #lines, 'line count ' .. n)
local got = {}
for line in mio.lines(dir .. '/a.tar.gz') do got[#got + 1] = line end
-- a.txt: 2, b.jsonl: 4 (one blank), empty.txt: 0, bin.dat: its "\n" bytes + 1 (it ends in 0xff)
local bin_lines = select(2, files['bin.dat']:gsub('\n', '\n')) + 1
local want_lines = 2 + 4 + bin_lines + #lines
check(#got == want_lines, string.format('lines of a.tar.gz: %d, expected %d', #got, want_lines))
local jl = {}
for line in mio.lines(dir .. '/b.jsonl.bz2') do jl[#jl + 1] = line end
check(#jl == 4 and jl[1] == '{"text": "first doc"}' and jl[3] == '' and jl[4] == '{"text": "no newline at end"}',
  'jsonl lines: ' .. cjson.encode(jl))
-- chunked reads of one member add up to the member
r = mio.open_archive(dir .. '/a.zip')
while true do
  local name, size = r:next()
  if not name then break end
  local parts = {}
  while true do
    local piece = r:read(1000)
    if not piece then break end
    check(#piece <= 1000, 'read returned more than asked')
    parts[#parts + 1] = piece
  end
  check(table.concat(parts) == files[name] and size == #files[name], 'chunked read of ' .. name)
end
r:close()

-- errors: missing, folders, damaged compressed data
expect_error('missing archive', { 'nothere.tar', 'No such file' }, mio.entries, dir .. '/nothere.tar')
expect_error('folder as archive', { 'is a folder' }, mio.entries, src)
local gz = read(dir .. '/big.txt.gz')
write(dir .. '/cut.txt.gz', gz:sub(1, math.floor(#gz / 2)))
expect_error('truncated gzip', { 'cut.txt.gz' }, function() for _ in mio.entries(dir .. '/cut.txt.gz') do end end)
local tz = read(dir .. '/a.tar.zst')
write(dir .. '/cut.tar.zst', tz:sub(1, math.floor(#tz * 0.6)))
expect_error('truncated tar.zst', { 'cut.tar.zst' }, function() for _ in mio.entries(dir .. '/cut.tar.zst') do end end)

-- ---- 5. file system ----
mio.makedirs(dir .. '/x/y/z')
mio.makedirs(dir .. '/x/y/z') -- again: fine
check(mio.stat(dir .. '/x/y/z').is_dir, 'makedirs')
expect_error('makedirs through a file', { 'a.txt', 'not a folder' }, mio.makedirs, src .. '/a.txt')
local listing = mio.listdir(src)
check(table.concat(listing, ' ') == 'a.txt big.txt bin.dat sub', 'listdir: ' .. table.concat(listing, ' '))
local st = mio.stat(src .. '/bin.dat')
check(st.size == #files['bin.dat'] and not st.is_dir and st.mtime_ns > 0, 'stat')
check(mio.stat(dir .. '/nothere') == nil, 'stat of a missing file')

testlib.rmdir(dir)
checker.done()
