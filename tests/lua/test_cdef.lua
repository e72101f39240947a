-- test_cdef.lua: the FFI declarations (read from core/include/mtt.h) agree with libmtt:
-- every declared function resolves, every exported mtt_* symbol is declared, and the layout
-- of mtt_tensor seen by LuaJIT is the one the C compiler used.
-- Run: mtt run tests/lua/test_cdef.lua (the command exports MTT_LIBRARY).
local ffi = require 'ffi'
local lib = require 'mtt.ffi'
local C = lib.C

-- names of the functions declared between the markers (comments removed first)
local text = lib.cdef_text:gsub('/%*.-%*/', ''):gsub('//[^\n]*', '')
local declared, n_declared = {}, 0
for name in text:gmatch('([%a_][%w_]*)%s*%(') do
  if name:match('^mtt_') and not declared[name] then
    declared[name] = true
    n_declared = n_declared + 1
  end
end
assert(n_declared > 50, 'few declarations found: ' .. n_declared)

-- every check runs; the failures are reported together at the end
local failures = {}
local function check(cond, msg) if not cond then failures[#failures + 1] = msg end end

-- 1. every declared function resolves in the library
local missing = {}
for name in pairs(declared) do
  local ok = pcall(function() return C[name] end)
  if not ok then missing[#missing + 1] = name end
end
table.sort(missing)
check(#missing == 0, 'declared in mtt.h but not in libmtt: ' .. table.concat(missing, ', '))

-- 2. every exported mtt_* function of the library is declared (internal ones must be hidden)
local path = os.getenv('MTT_LIBRARY')
assert(path and path:find('/'), 'MTT_LIBRARY must hold the path of libmtt.so (run through the mtt command)')
local nm = io.popen("nm -D --defined-only '" .. path:gsub("'", "'\\''") .. "' 2>&1")
local undeclared, n_exported = {}, 0
for line in nm:lines() do
  local kind, name = line:match('^%x*%s+(%a)%s+(mtt_[%w_]+)$')
  if name and (kind == 'T' or kind == 'W') then
    n_exported = n_exported + 1
    if not declared[name] then undeclared[#undeclared + 1] = name end
  end
end
nm:close()
assert(n_exported > 0, 'nm found no mtt_* functions in ' .. path)
table.sort(undeclared)
check(#undeclared == 0, #undeclared .. ' exported symbols are not in mtt.h (make them static or hidden): ' ..
  table.concat(undeclared, ', '))

-- 3. struct layout: mtt_abi_tensor_layout gives sizeof and the offset of each field
local fields = { 'dims', 'strides', 'offset', 'nelem', 'ndim', 'dtype_id', 'device_id', 'needs_grad', 'refcount',
  'reserved', 'storage', 'grad_tensor', 'grad_node' }
local out = ffi.new('int64_t[16]')
C.mtt_abi_tensor_layout(out)
check(tonumber(out[0]) == ffi.sizeof('mtt_tensor'),
  string.format('sizeof(mtt_tensor): C %d, LuaJIT %d', tonumber(out[0]), ffi.sizeof('mtt_tensor')))
for i, f in ipairs(fields) do
  check(tonumber(out[i]) == ffi.offsetof('mtt_tensor', f),
    string.format('offsetof(mtt_tensor, %s): C %d, LuaJIT %d', f, tonumber(out[i]), ffi.offsetof('mtt_tensor', f)))
end

if #failures > 0 then error('test_cdef:\n  ' .. table.concat(failures, '\n  '), 0) end
print(string.format('test_cdef: %d declared functions resolve, %d exported, layout of %d fields agrees',
  n_declared, n_exported, #fields))
