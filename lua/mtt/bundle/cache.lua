-- mtt.bundle.cache: where bundles are unpacked, and big files stored once by content.
--
--   <cache>/bundles/<sha256 of the bundle file>/   an unpacked, verified bundle
--   <cache>/blobs/<sha256 of a file>                a file of MIN_BLOB bytes or more
--
-- <cache> is $MTT_CACHE_DIR, else $XDG_CACHE_HOME/mtt, else ~/.cache/mtt. A big file (a
-- checkpoint, a corpus) in an unpacked bundle is a hardlink to its blob, so two bundles that
-- share it keep one copy on disk (a copy is made only where links are impossible, e.g. across
-- file systems). An unpacked bundle is checked against its manifest again every time it is
-- used, so a file changed in the cache is caught as a changed bundle would be.
local fs = require 'mtt.bundle.fs'
local archive = require 'mtt.bundle.archive'
local manifest = require 'mtt.bundle.manifest'
local io_ = require 'mtt.io'
local U = require 'mtt.util'

local raise = U.raise
local M = {}

M.MIN_BLOB = tonumber(os.getenv('MTT_BUNDLE_MIN_BLOB')) or 2 ^ 20

M.root = nil -- set to use another cache folder (tests)

function M.dir()
  local d = M.root or os.getenv('MTT_CACHE_DIR')
  if not d or d == '' then
    local xdg = os.getenv('XDG_CACHE_HOME')
    d = (xdg and xdg ~= '') and (xdg .. '/mtt') or ((os.getenv('HOME') or '/tmp') .. '/.cache/mtt')
  end
  return fs.absolute(d)
end

local counter = 0
local function tmp_name(base)
  counter = counter + 1
  -- no math.random: a recipe's own math.random sequence must not depend on mtt's calls
  return string.format('%s.tmp-%d-%d-%s', base, os.time(), counter, tostring({}):match('0x(%x+)') or '0')
end

-- Makes path (a file whose content has the given sha256) a link to its blob: the blob is
-- created from the file when it does not exist yet. Returns the blob's path.
function M.share(path, sha)
  local blobs = M.dir() .. '/blobs'
  io_.makedirs(blobs)
  local blob = blobs .. '/' .. sha
  if not fs.lstat(blob) then
    local tmp = tmp_name(blob)
    fs.copy(path, tmp)
    local got = fs.sha256_file(tmp)
    if got ~= sha then
      os.remove(tmp)
      raise(string.format("mtt.bundle: '%s' changed while it was cached", path))
    end
    assert(os.rename(tmp, blob))
  end
  local tmp = tmp_name(path)
  fs.link(blob, tmp)
  assert(os.rename(tmp, path))
  return blob
end

-- The folder of the unpacked, verified bundle at path, and its manifest. opts.limits: the
-- extraction limits (mtt.bundle.archive.limits).
function M.unpacked(path, opts)
  opts = opts or {}
  local kind = fs.lstat(path)
  if kind ~= 'file' and not (kind == 'link' and fs.realpath(path)) then raise('mtt.bundle: no bundle at ' .. path) end
  local sha = fs.sha256_file(path)
  local root = M.dir() .. '/bundles'
  local dir = root .. '/' .. sha
  if fs.lstat(dir) == 'dir' then
    return dir, manifest.check(dir, path), sha
  end
  io_.makedirs(root)
  local tmp = tmp_name(dir)
  io_.makedirs(tmp)
  local ok, err = pcall(function()
    archive.extract(path, tmp, opts.limits)
    local m = manifest.check(tmp, path)
    for _, f in ipairs(m.files) do
      if f.size >= M.MIN_BLOB then M.share(tmp .. '/' .. f.path, f.sha256) end
    end
  end)
  if not ok then
    pcall(fs.rmtree, tmp)
    error(err, 0)
  end
  if not os.rename(tmp, dir) then -- another process unpacked it meanwhile
    fs.rmtree(tmp)
  end
  return dir, manifest.check(dir, path), sha
end

return M
