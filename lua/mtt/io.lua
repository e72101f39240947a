-- mtt.io: safetensors files, archive members and the few file-system calls Lua lacks.
--
--   mtt.io.save_safetensors(path, named[, metadata[, {durable =}]])
--   local tensors, metadata, names = mtt.io.load_safetensors(path)
--   for name, bytes in mtt.io.entries('docs.tar.zst') do ... end
--   for line, member, lineno in mtt.io.lines('data.jsonl.xz') do ... end
--
-- Loaded tensors are memory-mapped (private pages: changing one never changes the file).
-- Archives are read by libarchive as streams: tar, zip, 7z, cpio, each possibly compressed,
-- and single plain or compressed files (gz, bz2, xz, lzma, zst, lz4) as one member.
local ffi = require 'ffi'
local C = require('mtt.ffi').C
local U = require 'mtt.util'
local tensor = require 'mtt.tensor'
local options = require 'mtt.options'

local raise, is_tensor, wrap = U.raise, tensor.is_tensor, tensor.wrap

local M = {}

local function check_path(path, fname)
  if type(path) ~= 'string' or path == '' then
    raise(string.format('%s: path must be a non-empty string, got %s', fname, type(path)))
  end
  return path
end

-- ---- safetensors ----

-- named: {{name, tensor}, ...} (order irrelevant: the file is sorted) or {name = tensor}.
local function named_list(named, fname)
  if type(named) ~= 'table' then raise(fname .. ': expected a table of tensors, got ' .. type(named)) end
  local list = {}
  if #named > 0 then
    for i, pair in ipairs(named) do
      if type(pair) ~= 'table' or type(pair[1]) ~= 'string' or not is_tensor(pair[2]) then
        raise(string.format('%s: element %d must be {name, tensor}', fname, i))
      end
      list[i] = pair
    end
    for k in pairs(named) do
      if type(k) ~= 'number' then raise(fname .. ': mix of a list and named entries (key ' .. tostring(k) .. ')') end
    end
  else
    for k, v in pairs(named) do
      if type(k) ~= 'string' then raise(string.format('%s: key %s is not a name', fname, tostring(k))) end
      if not is_tensor(v) then raise(string.format("%s: '%s' is a %s, expected a tensor", fname, k, type(v))) end
      list[#list + 1] = { k, v }
    end
  end
  return list
end

-- Lua strings -> const char *[], the strings anchored in keep while C runs.
local function cstrings(list, keep)
  local a = ffi.new('const char *[?]', #list > 0 and #list or 1)
  for i = 1, #list do
    keep[#keep + 1] = list[i]
    a[i - 1] = list[i]
  end
  return a
end

function M.save_safetensors(path, named, metadata, opts)
  local fname = 'mtt.io.save_safetensors'
  check_path(path, fname)
  require('mtt.sandbox').check_write(path, fname)
  local o = options.check(fname, opts, 'durable:boolean')
  local list = named_list(named, fname)
  local names, ptrs, keep = {}, ffi.new('mtt_tensor *[?]', #list > 0 and #list or 1), {}
  for i, pair in ipairs(list) do
    names[i] = pair[1]
    ptrs[i - 1] = pair[2]
    keep[#keep + 1] = pair[2]
  end
  local keys, values = {}, {}
  if metadata ~= nil then
    if type(metadata) ~= 'table' then raise(fname .. ': metadata must be a table of strings, got ' .. type(metadata)) end
    for k, v in pairs(metadata) do
      if type(k) ~= 'string' or type(v) ~= 'string' then
        raise(string.format('%s: metadata must map strings to strings (got %s = %s)', fname, tostring(k), type(v)))
      end
      keys[#keys + 1] = k
      values[#values + 1] = v
    end
  end
  U.check_status(C.mtt_safetensors_save(path, #list, cstrings(names, keep), ptrs, #keys, cstrings(keys, keep),
    cstrings(values, keep), o.durable and 1 or 0))
end

-- A handle on an opened (validated, mapped) file: :names(), :info(name), :tensor(name),
-- :metadata(), :close(). Tensors taken from it stay valid after close.
local File = {}
File.__index = File

function M.open_safetensors(path)
  check_path(path, 'mtt.io.open_safetensors')
  path = require('mtt.sandbox').check_read(path, 'mtt.io.open_safetensors')
  local f = C.mtt_safetensors_open(path)
  if f == nil then raise(U.last_error()) end
  return setmetatable({ f = ffi.gc(f, C.mtt_safetensors_close), path = path }, File)
end

local function live(self)
  if self.f == nil then raise('safetensors: ' .. self.path .. ' is closed') end
  return self.f
end

function File:names()
  local f, out = live(self), {}
  for i = 0, C.mtt_safetensors_count(f) - 1 do out[i + 1] = ffi.string(C.mtt_safetensors_name(f, i)) end
  return out
end

local function index_of(self, name)
  local i = C.mtt_safetensors_find(live(self), name)
  if i < 0 then raise(string.format("safetensors: '%s' holds no tensor named '%s'", self.path, tostring(name))) end
  return i
end

local shape8 = ffi.new('int64_t[8]')
-- {dtype = 'F32' (as written in the file), shape = {...}} without reading the data.
function File:info(name)
  local f, i = live(self), index_of(self, name)
  local nd = C.mtt_safetensors_shape(f, i, shape8)
  local shape = {}
  for d = 0, nd - 1 do shape[d + 1] = tonumber(shape8[d]) end
  return { dtype = ffi.string(C.mtt_safetensors_dtype(f, i)), shape = shape }
end

-- The tensor (memory-mapped); dtype ('f32' or 'f64', optional) converts floating ones (a copy).
function File:tensor(name, dtype)
  local d = dtype and U.dtype_id(dtype, 'safetensors:tensor') or -1
  return wrap(C.mtt_safetensors_tensor_as(live(self), index_of(self, name), d))
end

-- The __metadata__ table (nil when the file has none).
function File:metadata()
  local f = live(self)
  local n = C.mtt_safetensors_metadata_count(f)
  if n < 0 then return nil end
  local md = {}
  for i = 0, n - 1 do
    md[ffi.string(C.mtt_safetensors_metadata_key(f, i))] = ffi.string(C.mtt_safetensors_metadata_value(f, i))
  end
  return md
end

function File:close()
  if self.f ~= nil then
    C.mtt_safetensors_close(ffi.gc(self.f, nil))
    self.f = nil
  end
end

-- tensors (name -> tensor), metadata (a table; empty when the file has none), names (file order).
-- opts.dtype ('f32' or 'f64') converts the floating tensors (F16, BF16, F32, F64) as they load:
-- mtt's cpu kernels do not compute in bf16/f16, so half-precision checkpoints load this way.
function M.load_safetensors(path, opts)
  local o = options.check('mtt.io.load_safetensors', opts, 'dtype:string')
  local d = o.dtype and U.dtype_id(o.dtype, 'mtt.io.load_safetensors') or -1
  local file = M.open_safetensors(path)
  local f, tensors, names = file.f, {}, {}
  for i = 0, C.mtt_safetensors_count(f) - 1 do
    local name = ffi.string(C.mtt_safetensors_name(f, i))
    names[i + 1] = name
    tensors[name] = wrap(C.mtt_safetensors_tensor_as(f, i, d))
  end
  local md = file:metadata() or {}
  file:close()
  return tensors, md, names
end

-- ---- archives ----

local CHUNK = 1 * 2 ^ 20
local chunk_buf -- one read buffer shared by all readers: reads are copied into Lua strings at once

local Reader = {}
Reader.__index = Reader

-- A reader over the members of path: r:next() -> name, size (size nil when unknown), or nil at
-- the end; r:read([n]) -> up to n bytes of the current member, nil at its end; r:close().
function M.open_archive(path)
  check_path(path, 'mtt.io.open_archive')
  path = require('mtt.sandbox').check_read(path, 'mtt.io.open_archive')
  local a = C.mtt_archive_open(path)
  if a == nil then raise(U.last_error()) end
  return setmetatable({ a = ffi.gc(a, C.mtt_archive_close), path = path,
    format = nil }, Reader)
end

local function areader(self)
  if self.a == nil then raise('mtt.io: archive ' .. self.path .. ' is closed') end
  return self.a
end

function Reader:next()
  local a = areader(self)
  local rc = C.mtt_archive_next(a)
  if rc < 0 then raise(U.last_error()) end
  if rc == 0 then return nil end
  self.format = ffi.string(C.mtt_archive_format(a))
  local size = tonumber(C.mtt_archive_size(a))
  return ffi.string(C.mtt_archive_name(a)), size >= 0 and size or nil
end

function Reader:read(n)
  local a = areader(self)
  n = n or CHUNK
  if not U.is_int(n) or n < 1 then raise('mtt.io: read size must be an integer >= 1') end
  local buf
  if n <= CHUNK then
    chunk_buf = chunk_buf or ffi.new('char[?]', CHUNK)
    buf = chunk_buf
  else
    buf = ffi.new('char[?]', n)
  end
  local got = tonumber(C.mtt_archive_read(a, buf, n))
  if got < 0 then raise(U.last_error()) end
  if got == 0 then return nil end
  return ffi.string(buf, got)
end

-- The rest of the current member as one string.
function Reader:read_all()
  local parts = {}
  for s in function() return self:read() end do parts[#parts + 1] = s end
  return table.concat(parts)
end

function Reader:close()
  if self.a ~= nil then
    C.mtt_archive_close(ffi.gc(self.a, nil))
    self.a = nil
  end
end

-- for name, bytes in mtt.io.entries(path): every regular file of an archive (a plain or
-- compressed file is one entry), each read whole.
function M.entries(path)
  local r = M.open_archive(path)
  return function()
    if r.a == nil then return nil end
    local name = r:next()
    if not name then r:close(); return nil end
    return name, r:read_all()
  end
end

-- mtt.io.each_line(reader, fn): calls fn(line) for every line of the reader's current member,
-- without its "\n", reading it in chunks so that a member never has to fit in one string.
function M.each_line(r, fn)
  local pending = {} -- pieces of a line that spans chunks (no quadratic copies)
  while true do
    local chunk = r:read()
    if not chunk then break end
    local pos, nl = 1, chunk:find('\n', 1, true)
    if nl and #pending > 0 then
      pending[#pending + 1] = chunk:sub(1, nl - 1)
      fn(table.concat(pending))
      pending, pos, nl = {}, nl + 1, chunk:find('\n', nl + 1, true)
    end
    while nl do
      fn(chunk:sub(pos, nl - 1))
      pos = nl + 1
      nl = chunk:find('\n', pos, true)
    end
    if pos <= #chunk then pending[#pending + 1] = chunk:sub(pos) end
  end
  if #pending > 0 then fn(table.concat(pending)) end
end

-- for line, member, lineno in mtt.io.lines(path): the lines of every member, without their
-- "\n" (or "\r\n"), streamed in chunks.
function M.lines(path)
  local r = M.open_archive(path)
  return coroutine.wrap(function()
    while true do
      local name = r:next()
      if not name then break end
      local lineno = 0
      M.each_line(r, function(s)
        lineno = lineno + 1
        if s:byte(-1) == 13 then s = s:sub(1, -2) end
        coroutine.yield(s, name, lineno)
      end)
    end
    r:close()
  end)
end
-- ---- file system ----

function M.makedirs(path)
  require('mtt.sandbox').check_write(path, 'mtt.io.makedirs')
  U.check_status(C.mtt_fs_makedirs(check_path(path, 'mtt.io.makedirs')))
  return path
end

local st_size, st_mtime, st_dir = ffi.new('int64_t[1]'), ffi.new('int64_t[1]'), ffi.new('int[1]')
-- {size =, mtime_ns =, is_dir =}, or nil and the reason.
function M.stat(path)
  check_path(path, 'mtt.io.stat')
  if C.mtt_fs_stat(path, st_size, st_mtime, st_dir) ~= 0 then return nil, U.last_error() end
  return { size = tonumber(st_size[0]), mtime_ns = tonumber(st_mtime[0]), is_dir = st_dir[0] ~= 0 }
end

-- The names in a folder, sorted (without . and ..).
function M.listdir(path)
  path = require('mtt.sandbox').check_read(check_path(path, 'mtt.io.listdir'), 'mtt.io.listdir')
  local d = C.mtt_fs_dir_open(path)
  if d == nil then raise(U.last_error()) end
  local names = {}
  while true do
    local s = C.mtt_fs_dir_next(d)
    if s == nil then break end
    names[#names + 1] = ffi.string(s)
  end
  C.mtt_fs_dir_close(d)
  table.sort(names)
  return names
end

return M
