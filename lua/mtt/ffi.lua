-- mtt.ffi: declares the C API to LuaJIT and loads libmtt.
--
-- The declarations are not copied here: they are read from core/include/mtt.h, between the
-- MTT_FFI_BEGIN and MTT_FFI_END markers, so that the Lua side can never diverge from the
-- header. The package root is found from this file's own path, so it works from any cwd.
local ffi = require 'ffi'

local M = {}

-- <root>/lua/mtt/ffi.lua -> <root>
local source = debug.getinfo(1, 'S').source
local here = source:sub(1, 1) == '@' and source:sub(2) or source
M.root = here:match('^(.*)/lua/mtt/[^/]*$') or (here:match('^lua/mtt/') and '.') or '.'
M.header = M.root .. '/core/include/mtt.h'

local function read_file(path)
  local f, err = io.open(path, 'rb')
  if not f then error('mtt: cannot read the C header (' .. tostring(err) .. ')', 0) end
  local text = f:read('*a')
  f:close()
  return text
end

-- The text between the marker lines: lines holding only /* MTT_FFI_BEGIN */ and
-- /* MTT_FFI_END */ (the header's comments also name the markers).
function M.ffi_text(header_text)
  local _, b = header_text:find('\n[ \t]*/%*[ \t]*MTT_FFI_BEGIN[ \t]*%*/[ \t]*\n')
  local e = header_text:find('\n[ \t]*/%*[ \t]*MTT_FFI_END[ \t]*%*/', b or 1)
  if not b or not e then
    error('mtt: ' .. M.header .. ' lacks the /* MTT_FFI_BEGIN */ and /* MTT_FFI_END */ lines', 0)
  end
  return header_text:sub(b + 1, e)
end

M.cdef_text = M.ffi_text(read_file(M.header))
ffi.cdef(M.cdef_text)

-- The mtt command exports MTT_LIBRARY (absolute path). Plain luajit tries the default build
-- folder of build.sh, then the dynamic loader's search path.
local candidates = os.getenv('MTT_LIBRARY') and { os.getenv('MTT_LIBRARY') }
  or { M.root .. '/build/libmtt.so', 'mtt' }
local errors = {}
for _, path in ipairs(candidates) do
  local ok, lib = pcall(ffi.load, path)
  if ok then
    M.C, M.library = lib, path
    break
  end
  errors[#errors + 1] = tostring(lib)
end
if not M.C then
  error('mtt: cannot load libmtt (' .. table.concat(errors, '; ') ..
        '); run through the mtt command or set MTT_LIBRARY to the path of libmtt.so', 0)
end

return M
