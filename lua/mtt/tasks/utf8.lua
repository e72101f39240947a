-- mtt.tasks.utf8: strict UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing
-- above U+10FFFF). lua-cjson passes any bytes through, so task files are checked here.
local byte = string.byte

local M = {}

-- nil when s is valid; else the 1-based byte offset of the first bad sequence.
function M.invalid_at(s)
  if not s:find('[\128-\255]') then return nil end
  local i, n = 1, #s
  while i <= n do
    local c = byte(s, i)
    if c < 0x80 then
      i = i + 1
    else
      local len, lo, hi = 0, 0x80, 0xBF -- lo/hi: the allowed range of the second byte
      if c >= 0xC2 and c <= 0xDF then len = 2
      elseif c == 0xE0 then len, lo = 3, 0xA0
      elseif c == 0xED then len, hi = 3, 0x9F
      elseif c >= 0xE1 and c <= 0xEF then len = 3
      elseif c == 0xF0 then len, lo = 4, 0x90
      elseif c >= 0xF1 and c <= 0xF3 then len = 4
      elseif c == 0xF4 then len, hi = 4, 0x8F
      else return i end
      if i + len - 1 > n then return i end
      local c2 = byte(s, i + 1)
      if c2 < lo or c2 > hi then return i end
      for j = i + 2, i + len - 1 do
        local cj = byte(s, j)
        if cj < 0x80 or cj > 0xBF then return i end
      end
      i = i + len
    end
  end
  return nil
end

return M
