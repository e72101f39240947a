-- mtt.bundle.archive: the bundle file itself (tar + zstd through libarchive, core/io/bundle.c):
-- a writer that makes the same bytes from the same files, and a safe extractor.
local ffi = require 'ffi'
local C = require('mtt.ffi').C
local U = require 'mtt.util'

local raise = U.raise
local M = {}

-- Limits of the extractor (bytes a file, bytes in all, members); MTT_BUNDLE_MAX_FILE and
-- MTT_BUNDLE_MAX_TOTAL override the first two.
M.limits = {
  max_file = tonumber(os.getenv('MTT_BUNDLE_MAX_FILE')) or 16 * 2 ^ 30,
  max_total = tonumber(os.getenv('MTT_BUNDLE_MAX_TOTAL')) or 64 * 2 ^ 30,
  max_entries = 200000,
}

local Writer = {}
Writer.__index = Writer

-- writer(path, compression = 'zstd' | 'gzip' | 'none'): w:add_bytes(name, s), w:add_file(name,
-- src), w:close(). Members appear in the order they are added.
function M.writer(path, compression)
  local w = C.mtt_bundle_writer_open(path, compression or 'zstd')
  if w == nil then raise(U.last_error()) end
  return setmetatable({ w = ffi.gc(w, C.mtt_bundle_writer_free), path = path }, Writer)
end

function Writer:add_bytes(name, s) U.check_status(C.mtt_bundle_writer_add_bytes(self.w, name, s, #s)) end
function Writer:add_file(name, src) U.check_status(C.mtt_bundle_writer_add_file(self.w, name, src)) end

function Writer:close()
  if self.w == nil then return end
  local rc = C.mtt_bundle_writer_close(self.w)
  C.mtt_bundle_writer_free(ffi.gc(self.w, nil))
  self.w = nil
  U.check_status(rc)
end

-- Unpacks path into the existing folder dest; any refused member refuses the whole archive
-- (nothing of it is written). limits: {max_file =, max_total =, max_entries =}.
function M.extract(path, dest, limits)
  local l = {}
  for k, v in pairs(M.limits) do l[k] = v end
  for k, v in pairs(limits or {}) do
    if l[k] == nil then raise('mtt.bundle.extract: unknown limit ' .. tostring(k)) end
    l[k] = v
  end
  U.check_status(C.mtt_bundle_extract(path, dest, l.max_file, l.max_total, l.max_entries))
end

return M
