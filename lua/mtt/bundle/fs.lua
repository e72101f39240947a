-- mtt.bundle.fs: paths and files for bundles and the sandbox: sha256, lstat, links, folder
-- removal, the working folder, and lexical path normalization (the sandbox compares paths).
local ffi = require 'ffi'
local C = require('mtt.ffi').C
local U = require 'mtt.util'

local raise = U.raise
local M = {}

local hex = ffi.new('char[65]')
local size1, ino1, nlink1 = ffi.new('int64_t[1]'), ffi.new('int64_t[1]'), ffi.new('int64_t[1]')

function M.sha256(s)
  U.check_status(C.mtt_sha256_bytes(s, #s, hex))
  return ffi.string(hex, 64)
end

-- sha256 hex and size in bytes of a file
function M.sha256_file(path)
  U.check_status(C.mtt_sha256_file(path, hex, size1))
  return ffi.string(hex, 64), tonumber(size1[0])
end

local KINDS = { [0] = nil, 'file', 'dir', 'link', 'other' }
-- kind ('file' | 'dir' | 'link' | 'other' | nil when missing), size, inode, link count; links
-- are not followed.
function M.lstat(path)
  local k = C.mtt_bundle_fs_lstat(path, size1, ino1, nlink1)
  if k < 0 then raise(U.last_error()) end
  if k == 0 then return nil end
  return KINDS[k], tonumber(size1[0]), tonumber(ino1[0]), tonumber(nlink1[0])
end

-- Hardlink src at dst (a copy where a link cannot be made); true when linked.
function M.link(src, dst)
  require('mtt.sandbox').check_write(dst, 'mtt.bundle.fs.link')
  local rc = C.mtt_bundle_fs_link(src, dst)
  if rc < 0 then raise(U.last_error()) end
  return rc == 0
end

function M.copy(src, dst)
  require('mtt.sandbox').check_write(dst, 'mtt.bundle.fs.copy')
  U.check_status(C.mtt_bundle_fs_copy(src, dst))
end

function M.rmtree(path)
  require('mtt.sandbox').check_write(path, 'mtt.bundle.fs.rmtree')
  U.check_status(C.mtt_bundle_fs_rmtree(path))
end

function M.chdir(path) U.check_status(C.mtt_bundle_fs_chdir(path)) end

function M.getcwd()
  local p = C.mtt_bundle_fs_getcwd()
  if p == nil then raise(U.last_error()) end
  return ffi.string(p)
end

-- The canonical path, or nil when path does not exist.
function M.realpath(path)
  local p = C.mtt_bundle_fs_realpath(path)
  if p == nil then return nil end
  return ffi.string(p)
end

-- Confines this process for good with Landlock (core/io/landlock.c): reads only under
-- opts.read, writes only under opts.write, no exec, no TCP. Returns the Landlock ABI version
-- applied, or 0 when the kernel has none (nothing was done).
function M.confine(opts)
  local function list(t)
    t = t or {}
    local a = ffi.new('const char *[?]', math.max(#t, 1))
    for i, p in ipairs(t) do a[i - 1] = p end
    return a, #t
  end
  local r, nr = list(opts.read)
  local w, nw = list(opts.write)
  local keep = { opts.read, opts.write } -- the strings stay alive during the call
  local abi = C.mtt_bundle_confine(nr, r, nw, w)
  if abi < 0 then raise(U.last_error()) end
  return abi, keep and abi
end

function M.landlock_abi() return C.mtt_bundle_landlock_abi() end

-- "a/./b//c/../d" -> "a/b/d"; an absolute path stays absolute; ".." above the root of an
-- absolute path stays at "/"; a relative path may keep leading ".." parts.
function M.normalize(path)
  local abs = path:sub(1, 1) == '/'
  local parts = {}
  for p in path:gmatch('[^/]+') do
    if p == '..' then
      if #parts > 0 and parts[#parts] ~= '..' then parts[#parts] = nil
      elseif not abs then parts[#parts + 1] = '..' end
    elseif p ~= '.' then
      parts[#parts + 1] = p
    end
  end
  local s = table.concat(parts, '/')
  if abs then return '/' .. s end
  return s == '' and '.' or s
end

-- The absolute, normalized form of path (relative to the working folder).
function M.absolute(path)
  if path:sub(1, 1) ~= '/' then path = M.getcwd() .. '/' .. path end
  return M.normalize(path)
end

-- The absolute path with symlinks resolved in its longest existing prefix (the rest, not yet
-- created, is appended): what a write to path would really touch.
function M.resolve(path)
  local abs = M.absolute(path)
  local head, tail = abs, ''
  while true do
    local real = M.realpath(head)
    if real then return M.normalize(real .. tail) end
    local parent, last = head:match('^(.*)/([^/]+)$')
    if not parent then return abs end
    tail = '/' .. last .. tail
    head = parent == '' and '/' or parent
  end
end

-- Is path (absolute, normalized) inside folder (absolute, normalized), or the folder itself?
function M.inside(path, folder)
  if folder == '/' then return true end
  return path == folder or path:sub(1, #folder + 1) == folder .. '/'
end

-- path relative to folder when inside it, else nil
function M.relative(path, folder)
  if path == folder then return '.' end
  if M.inside(path, folder) then return path:sub(#folder + 2) end
  return nil
end

function M.dirname(path) return path:match('^(.*)/[^/]*$') or '.' end

function M.read_file(path)
  local f, err = io.open(path, 'rb')
  if not f then return nil, err end
  local s = f:read('*a')
  f:close()
  return s
end

-- Every regular file under dir, as paths relative to it, sorted. Symlinks are not followed.
function M.walk(dir, out, prefix)
  out, prefix = out or {}, prefix or ''
  local io_ = require 'mtt.io'
  for _, name in ipairs(io_.listdir(dir)) do
    local full, rel = dir .. '/' .. name, prefix .. name
    local kind = M.lstat(full)
    if kind == 'dir' then M.walk(full, out, rel .. '/')
    elseif kind == 'file' then out[#out + 1] = rel end
  end
  if prefix == '' then table.sort(out) end
  return out
end

return M
