-- mtt.repl.chart: a line chart as text, for the terminal (:plot).
--
--   chart.render({{name = 'loss', x = {...}, y = {...}}, ...}, {width = 80, height = 12,
--                unicode = true, lines = true, xlabel = nil}) -> string
--
-- One series drawn with Unicode Braille cells (2 x 4 dots a character, so a 66-column chart
-- has 132 points across); several series, or unicode = false, use one ASCII mark per series
-- ('*', '+', 'o', 'x', '#') a character. Consecutive points are joined by straight lines
-- (lines = false: the points alone).
-- Left: y labels (top, middle, bottom); below: the x range. Fits `width` columns.
jit.off(true, true)
local U = require 'mtt.util'

local M = {}
M.marks = { '*', '+', 'o', 'x', '#', '@', '%' }

local function label(v)
  if v == 0 then return '0' end
  local a = math.abs(v)
  if a >= 1e5 or a < 1e-3 then return (string.format('%.3g', v)) end
  if v == math.floor(v) then return string.format('%d', v) end
  return (string.format('%.4g', v))
end

-- Unicode locale? (the terminal can show Braille)
function M.unicode_ok()
  for _, name in ipairs({ 'LC_ALL', 'LC_CTYPE', 'LANG' }) do
    local v = os.getenv(name)
    if v and v ~= '' then return v:upper():find('UTF%-?8') ~= nil end
  end
  return false
end

local function utf8_char(code)
  -- code < 0x10000 here (Braille is U+2800..U+28FF, box drawing U+25xx)
  return string.char(0xE0 + math.floor(code / 4096), 0x80 + math.floor(code / 64) % 64, 0x80 + code % 64)
end

-- Braille dot bit of the dot at column dx (0..1), row dy (0..3) of a cell.
local DOT = { [0] = { [0] = 0x01, 0x02, 0x04, 0x40 }, [1] = { [0] = 0x08, 0x10, 0x20, 0x80 } }

local function line_points(x0, y0, x1, y1, fn)
  local dx, dy = math.abs(x1 - x0), math.abs(y1 - y0)
  local sx, sy = x0 < x1 and 1 or -1, y0 < y1 and 1 or -1
  local err = dx - dy
  while true do
    fn(x0, y0)
    if x0 == x1 and y0 == y1 then return end
    local e2 = 2 * err
    if e2 > -dy then err = err - dy; x0 = x0 + sx end
    if e2 < dx then err = err + dx; y0 = y0 + sy end
  end
end

function M.render(series, opts)
  opts = opts or {}
  local width, height = opts.width or 80, opts.height or 12
  if type(series) ~= 'table' or #series == 0 then U.raise('chart.render: no series given') end
  local xmin, xmax, ymin, ymax = math.huge, -math.huge, math.huge, -math.huge
  local npoints = 0
  for _, s in ipairs(series) do
    if #s.x ~= #s.y then U.raise('chart.render: series ' .. tostring(s.name) .. ': x and y lengths differ') end
    for i = 1, #s.x do
      local x, y = s.x[i], s.y[i]
      if y == y and math.abs(y) ~= math.huge then
        xmin, xmax = math.min(xmin, x), math.max(xmax, x)
        ymin, ymax = math.min(ymin, y), math.max(ymax, y)
        npoints = npoints + 1
      end
    end
  end
  if npoints == 0 then U.raise('chart.render: no finite values to plot') end
  if ymin == ymax then
    local pad = ymin == 0 and 1 or math.abs(ymin) * 0.05
    ymin, ymax = ymin - pad, ymax + pad
  end
  local ylabels = { label(ymax), label((ymin + ymax) / 2), label(ymin) }
  local lw = 0
  for _, l in ipairs(ylabels) do lw = math.max(lw, #l) end
  local unicode = opts.unicode
  if unicode == nil then unicode = M.unicode_ok() end
  local braille = unicode and #series == 1
  local cols = width - lw - 2 -- label, space, axis
  if cols < 10 then U.raise('chart.render: width ' .. width .. ' is too small') end
  local sub_x, sub_y = braille and 2 or 1, braille and 4 or 1
  local W, H = cols * sub_x, height * sub_y -- dots across and down
  local function px(x)
    if xmax == xmin then return math.floor(W / 2) end
    return math.floor((x - xmin) / (xmax - xmin) * (W - 1) + 0.5)
  end
  local function py(y) -- 0 at the top
    return math.floor((ymax - y) / (ymax - ymin) * (H - 1) + 0.5)
  end
  local grid = {}
  for r = 0, height - 1 do
    grid[r] = {}
    for c = 0, cols - 1 do grid[r][c] = braille and 0 or ' ' end
  end
  for si, s in ipairs(series) do
    local mark = M.marks[(si - 1) % #M.marks + 1]
    local function plot(x, y)
      local c, r = math.floor(x / sub_x), math.floor(y / sub_y)
      if braille then
        grid[r][c] = bit.bor(grid[r][c], DOT[x % 2][y % 4])
      else
        grid[r][c] = mark
      end
    end
    local lx, ly
    for i = 1, #s.x do
      local y = s.y[i]
      if y == y and math.abs(y) ~= math.huge then
        local x1, y1 = px(s.x[i]), py(y)
        if lx and opts.lines ~= false then line_points(lx, ly, x1, y1, plot) else plot(x1, y1) end
        lx, ly = x1, y1
      end
    end
  end
  local out = {}
  local axis = unicode and utf8_char(0x2502) or '|'
  local mid = math.floor((height - 1) / 2)
  for r = 0, height - 1 do
    local lab = r == 0 and ylabels[1] or (r == mid and ylabels[2]) or (r == height - 1 and ylabels[3]) or ''
    local cells = {}
    for c = 0, cols - 1 do
      local v = grid[r][c]
      if braille then cells[#cells + 1] = v == 0 and ' ' or utf8_char(0x2800 + v) else cells[#cells + 1] = v end
    end
    out[#out + 1] = (string.format('%' .. lw .. 's %s', lab, axis) .. table.concat(cells)):gsub('%s+$', '')
  end
  local rule = unicode and (utf8_char(0x2514) .. string.rep(utf8_char(0x2500), cols)) or ('+' .. string.rep('-', cols))
  out[#out + 1] = string.rep(' ', lw + 1) .. rule
  local left, right = label(xmin), label(xmax)
  local gap = math.max(1, cols + 1 - #left - #right)
  out[#out + 1] = string.rep(' ', lw + 1) .. left .. string.rep(' ', gap) .. right
  if opts.xlabel then
    local t = opts.xlabel
    out[#out] = out[#out]:sub(1, lw + 1 + #left) .. string.rep(' ', math.max(1, math.floor((gap - #t) / 2)))
      .. t .. string.rep(' ', math.max(1, gap - #t - math.max(1, math.floor((gap - #t) / 2)))) .. right
  end
  if not braille and #series > 1 then
    local legend = {}
    for si, s in ipairs(series) do legend[#legend + 1] = M.marks[(si - 1) % #M.marks + 1] .. ' ' .. tostring(s.name) end
    out[#out + 1] = string.rep(' ', lw + 1) .. table.concat(legend, '   ')
  end
  return table.concat(out, '\n')
end

return M
