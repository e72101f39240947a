-- mtt.report.svg: a small SVG plot writer (no plotting library): line plots with error bars,
-- scatter plots with a least-squares line, grouped bar charts with error bars; each with a
-- title, axes with "nice" ticks (1, 2, 5 x 10^k), axis labels and a legend. Output is plain
-- SVG 1.1 text, deterministic for a given spec (coordinates printed with 2 decimals).
--
-- spec: kind ('line' | 'scatter' | 'bar'), title, xlabel, ylabel, series = {{label =, x = {},
-- y = {}, lo = {}, hi = {}, labels = {} (scatter: text by each point), dashed = bool}},
-- categories (bar: the x order; default the series' x in first-seen order), xlog (line,
-- scatter: log10 x axis), fit (scatter: draw y = a + b x, default true), width, height.
-- Points whose x or y is not a finite number are skipped; lo/hi that are not finite draw no bar.
local U = require 'mtt.util'
local Tab = require 'mtt.report.table'

local SVG = {}

SVG.palette = { '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
  '#7f7f7f', '#bcbd22', '#17becf' }

local function finite(v) return type(v) == 'number' and v == v and v ~= math.huge and v ~= -math.huge end

function SVG.escape(s)
  return (tostring(s):gsub('[&<>"\']', { ['&'] = '&amp;', ['<'] = '&lt;', ['>'] = '&gt;',
    ['"'] = '&quot;', ["'"] = '&#39;' }))
end
local esc = SVG.escape

local function f2(v) return string.format('%.2f', v) end

-- Ticks covering [lo, hi]: about n of them at multiples of 1, 2 or 5 x 10^k. Returns the ticks
-- (first <= lo, last >= hi) and the step.
function SVG.nice_ticks(lo, hi, n)
  n = n or 6
  if not (hi > lo) then
    local pad = lo == 0 and 1 or math.abs(lo) * 0.1
    lo, hi = lo - pad, hi + pad
  end
  local raw = (hi - lo) / n
  local mag = 10 ^ math.floor(math.log10(raw))
  local step
  for _, m in ipairs({ 1, 2, 2.5, 5, 10 }) do
    if raw <= m * mag * (1 + 1e-9) then step = m * mag; break end
  end
  local first = math.floor(lo / step + 1e-9) * step
  local last = math.ceil(hi / step - 1e-9) * step
  local ticks = {}
  local k = 0
  while true do
    local t = first + k * step
    if t > last + step * 1e-6 then break end
    if math.abs(t) < step * 1e-9 then t = 0 end
    ticks[#ticks + 1] = t
    k = k + 1
  end
  return ticks, step
end

-- Tick label with as many decimals as the step needs.
function SVG.tick_text(v, step)
  if v == 0 then return '0' end
  local a = math.abs(v)
  if a >= 1e6 or a < 1e-4 then return (string.format('%.3g', v):gsub('e%+?(-?)0*(%d)', 'e%1%2')) end
  local d = -math.floor(math.log10(step) + 1e-9)
  if not (d >= 1) then d = 0 end -- also -0, which '%.-0f' would not take
  if step * 10 ^ d ~= math.floor(step * 10 ^ d + 0.5) then d = d + 1 end -- 2.5 x 10^k
  return string.format('%.' .. d .. 'f', v)
end

-- Series checked and copied (arrays of numbers, nil -> missing).
local function prepare(spec)
  local kind = spec.kind
  if kind ~= 'line' and kind ~= 'scatter' and kind ~= 'bar' then
    U.raise("mtt.report.plot: kind must be 'line', 'scatter' or 'bar', got " .. tostring(kind))
  end
  if type(spec.series) ~= 'table' or #spec.series == 0 then
    U.raise(string.format("mtt.report.plot '%s': series must be a non-empty array of {label =, x =, y =}", tostring(spec.name or spec.title)))
  end
  for i, s in ipairs(spec.series) do
    if type(s) ~= 'table' or type(s.x) ~= 'table' or type(s.y) ~= 'table' then
      U.raise(string.format("mtt.report.plot '%s': series[%d] needs x and y arrays", tostring(spec.name or spec.title), i))
    end
    if #s.x ~= #s.y then
      U.raise(string.format("mtt.report.plot '%s': series[%d] ('%s') has %d x and %d y values",
        tostring(spec.name or spec.title), i, tostring(s.label), #s.x, #s.y))
    end
    for _, f in ipairs({ 'lo', 'hi' }) do
      if s[f] ~= nil and (type(s[f]) ~= 'table' or #s[f] ~= #s.y) then
        U.raise(string.format("mtt.report.plot '%s': series[%d].%s must be an array as long as y (%d)",
          tostring(spec.name or spec.title), i, f, #s.y))
      end
    end
  end
end

-- Renders spec to SVG text. Returns the text (and, for scatter with a fit, the fit table).
function SVG.render(spec)
  prepare(spec)
  local kind, series = spec.kind, spec.series
  local W, H = spec.width or 720, spec.height or 450
  -- legend: at the right of the plot area when there is more than one series or a label
  local legend = {}
  for i, s in ipairs(series) do
    if s.label ~= nil and (#series > 1 or s.label ~= '') then legend[#legend + 1] = i end
  end
  local maxlab = 0
  for _, i in ipairs(legend) do maxlab = math.max(maxlab, #tostring(series[i].label)) end
  local legend_w = #legend > 0 and math.min(320, 44 + 7 * maxlab) or 0
  H = math.max(H, 48 + 20 * #legend + 70) -- a long legend makes the figure taller
  -- bar categories
  local cats, cat_index = {}, {}
  if kind == 'bar' then
    for _, c in ipairs(spec.categories or {}) do
      if not cat_index[tostring(c)] then cats[#cats + 1] = tostring(c); cat_index[tostring(c)] = #cats end
    end
    for _, s in ipairs(series) do
      for _, c in ipairs(s.x) do
        if not cat_index[tostring(c)] then cats[#cats + 1] = tostring(c); cat_index[tostring(c)] = #cats end
      end
    end
  end
  local maxcat = 0
  for _, c in ipairs(cats) do maxcat = math.max(maxcat, #c) end
  local rotate = kind == 'bar' and (maxcat * 7 > (W - 110 - legend_w) / math.max(1, #cats))
  local L, T = 78, 48
  local R = W - 24 - legend_w
  local B = H - 62 - (rotate and math.min(120, 6 * maxcat) or 0)
  local xlog = spec.xlog and kind ~= 'bar'
  local function xval(v)
    if not finite(v) then return nil end
    if xlog then if v <= 0 then return nil end return math.log10(v) end
    return v
  end

  -- data ranges
  local xmin, xmax, ymin, ymax = math.huge, -math.huge, math.huge, -math.huge
  local xs_seen, xs_list = {}, {}
  for _, s in ipairs(series) do
    for i = 1, #s.y do
      local y = s.y[i]
      local x = kind == 'bar' and 0 or xval(s.x[i])
      if finite(y) and x then
        ymin, ymax = math.min(ymin, y), math.max(ymax, y)
        if kind ~= 'bar' then
          xmin, xmax = math.min(xmin, x), math.max(xmax, x)
          if not xs_seen[s.x[i]] then xs_seen[s.x[i]] = true; xs_list[#xs_list + 1] = s.x[i] end
        end
        for _, f in ipairs({ 'lo', 'hi' }) do
          local e = s[f] and s[f][i]
          if finite(e) then ymin, ymax = math.min(ymin, e), math.max(ymax, e) end
        end
      end
    end
  end
  local empty = ymin > ymax
  if empty then ymin, ymax, xmin, xmax = 0, 1, 0, 1 end
  if kind == 'bar' then ymin, ymax = math.min(ymin, 0), math.max(ymax, 0) end
  if xmin > xmax then xmin, xmax = 0, 1 end
  if kind == 'scatter' and not empty then -- points off the frame: pad by 4% of the range
    local px_, py_ = (xmax - xmin) * 0.04, (ymax - ymin) * 0.04
    xmin, xmax, ymin, ymax = xmin - px_, xmax + px_, ymin - py_, ymax + py_
  end
  local yt, ystep = SVG.nice_ticks(ymin, ymax, 6)
  local y0, y1 = yt[1], yt[#yt]
  local xt, xstep, x0, x1
  if kind ~= 'bar' then
    if xlog then
      table.sort(xs_list)
      xt = {}
      if #xs_list <= 12 then for _, v in ipairs(xs_list) do if v > 0 then xt[#xt + 1] = math.log10(v) end end
      else for e = math.floor(xmin), math.ceil(xmax) do xt[#xt + 1] = e end end
      local pad = (xmax - xmin) * 0.05
      if pad == 0 then pad = 0.1 end
      x0, x1 = xmin - pad, xmax + pad
    else
      xt, xstep = SVG.nice_ticks(xmin, xmax, 7)
      x0, x1 = xt[1], xt[#xt]
    end
  end
  local function px(x) return L + (x - x0) / (x1 - x0) * (R - L) end
  local function py(y) return B - (y - y0) / (y1 - y0) * (B - T) end

  local o = {}
  local function add(...) o[#o + 1] = table.concat({ ... }) end
  add('<?xml version="1.0" encoding="UTF-8"?>')
  add('<svg xmlns="http://www.w3.org/2000/svg" width="', W, '" height="', H, '" viewBox="0 0 ', W, ' ', H,
    '" font-family="DejaVu Sans, Arial, sans-serif">')
  add('<rect x="0" y="0" width="', W, '" height="', H, '" fill="white"/>')
  if spec.title then
    add('<text x="', f2((L + R) / 2), '" y="28" font-size="15" font-weight="bold" text-anchor="middle">', esc(spec.title), '</text>')
  end
  -- grid and y ticks
  add('<g font-size="11" fill="#222">')
  for _, t in ipairs(yt) do
    local y = f2(py(t))
    add('<line x1="', L, '" y1="', y, '" x2="', R, '" y2="', y, '" stroke="#e4e4e4" stroke-width="1"/>')
    add('<line x1="', L - 5, '" y1="', y, '" x2="', L, '" y2="', y, '" stroke="#333"/>')
    add('<text x="', L - 8, '" y="', f2(py(t) + 4), '" text-anchor="end">', esc(SVG.tick_text(t, ystep)), '</text>')
  end
  -- x ticks
  if kind == 'bar' then
    local slot = (R - L) / math.max(1, #cats)
    for i, c in ipairs(cats) do
      local x = L + (i - 0.5) * slot
      add('<line x1="', f2(x), '" y1="', B, '" x2="', f2(x), '" y2="', B + 5, '" stroke="#333"/>')
      if rotate then
        add('<text x="', f2(x), '" y="', B + 16, '" text-anchor="end" transform="rotate(-35 ', f2(x), ' ', B + 16, ')">', esc(c), '</text>')
      else
        add('<text x="', f2(x), '" y="', B + 18, '" text-anchor="middle">', esc(c), '</text>')
      end
    end
  else
    for _, t in ipairs(xt) do
      local x = f2(px(t))
      add('<line x1="', x, '" y1="', T, '" x2="', x, '" y2="', B, '" stroke="#e4e4e4" stroke-width="1"/>')
      add('<line x1="', x, '" y1="', B, '" x2="', x, '" y2="', B + 5, '" stroke="#333"/>')
      local label
      if not xlog then label = SVG.tick_text(t, xstep)
      elseif #xs_list <= 12 then label = Tab.short_text(10 ^ t) -- ticks at the data's x values
      else label = SVG.tick_text(10 ^ t, 10 ^ math.min(t, 0)) end
      add('<text x="', x, '" y="', B + 18, '" text-anchor="middle">', esc(label), '</text>')
    end
  end
  add('</g>')
  -- frame, zero line for bars
  add('<rect x="', L, '" y="', T, '" width="', R - L, '" height="', B - T, '" fill="none" stroke="#333" stroke-width="1"/>')
  if kind == 'bar' and y0 < 0 and y1 > 0 then
    add('<line x1="', L, '" y1="', f2(py(0)), '" x2="', R, '" y2="', f2(py(0)), '" stroke="#333"/>')
  end
  -- axis labels
  if spec.xlabel then
    add('<text x="', f2((L + R) / 2), '" y="', H - 16, '" font-size="13" text-anchor="middle">', esc(spec.xlabel), '</text>')
  end
  if spec.ylabel then
    local cy = f2((T + B) / 2)
    add('<text x="20" y="', cy, '" font-size="13" text-anchor="middle" transform="rotate(-90 20 ', cy, ')">', esc(spec.ylabel), '</text>')
  end
  if empty then
    add('<text x="', f2((L + R) / 2), '" y="', f2((T + B) / 2), '" font-size="13" text-anchor="middle" fill="#888">no data</text>')
  end

  local function errbar(x, lo, hi, color, cap)
    if not (finite(lo) and finite(hi)) then return end
    add('<line x1="', f2(x), '" y1="', f2(py(lo)), '" x2="', f2(x), '" y2="', f2(py(hi)), '" stroke="', color, '" stroke-width="1.2"/>')
    for _, e in ipairs({ lo, hi }) do
      add('<line x1="', f2(x - cap), '" y1="', f2(py(e)), '" x2="', f2(x + cap), '" y2="', f2(py(e)), '" stroke="', color, '" stroke-width="1.2"/>')
    end
  end

  local fits = {}
  for si, s in ipairs(series) do
    local color = s.color or SVG.palette[(si - 1) % #SVG.palette + 1]
    add('<g class="series" id="series-', si, '">')
    if kind == 'bar' then
      local slot = (R - L) / math.max(1, #cats)
      local bw = slot * 0.8 / #series
      for i = 1, #s.y do
        local ci = cat_index[tostring(s.x[i])]
        local y = s.y[i]
        if ci and finite(y) then
          local xl = L + (ci - 1) * slot + slot * 0.1 + (si - 1) * bw
          local ytop, ybase = py(math.max(y, 0)), py(math.min(y, 0))
          add('<rect x="', f2(xl), '" y="', f2(ytop), '" width="', f2(bw * 0.92), '" height="', f2(ybase - ytop),
            '" fill="', color, '"><title>', esc(tostring(s.label or '') .. ' ' .. tostring(s.x[i]) .. ': ' .. SVG.tick_text(y, math.abs(y) / 1000 + 1e-12)), '</title></rect>')
          errbar(xl + bw * 0.46, s.lo and s.lo[i], s.hi and s.hi[i], '#222', math.min(5, bw * 0.25))
        end
      end
    else
      -- the line: broken where a point is missing
      if kind == 'line' then
        local pts = {}
        local function flush()
          if #pts >= 2 then
            add('<polyline points="', table.concat(pts, ' '), '" fill="none" stroke="', color, '" stroke-width="2"',
              s.dashed and ' stroke-dasharray="6 4"' or '', '/>')
          end
          pts = {}
        end
        for i = 1, #s.y do
          local x = xval(s.x[i])
          if x and finite(s.y[i]) then pts[#pts + 1] = f2(px(x)) .. ',' .. f2(py(s.y[i])) else flush() end
        end
        flush()
      end
      for i = 1, #s.y do
        local x = xval(s.x[i])
        if x and finite(s.y[i]) then
          errbar(px(x), s.lo and s.lo[i], s.hi and s.hi[i], color, 4)
          add('<circle cx="', f2(px(x)), '" cy="', f2(py(s.y[i])), '" r="', kind == 'scatter' and '4' or '3.5',
            '" fill="', color, '" fill-opacity="', kind == 'scatter' and '0.8' or '1', '"/>')
          if s.labels and s.labels[i] ~= nil then
            add('<text x="', f2(px(x) + 6), '" y="', f2(py(s.y[i]) - 5), '" font-size="9" fill="#444">', esc(s.labels[i]), '</text>')
          end
        end
      end
      if kind == 'scatter' and spec.fit ~= false then
        local xs, ys = {}, {}
        for i = 1, #s.y do
          local x = xval(s.x[i])
          if x and finite(s.y[i]) then xs[#xs + 1] = x; ys[#ys + 1] = s.y[i] end
        end
        if #xs >= 2 then
          local stats = require 'mtt.stats'
          local a, b = stats.linear_fit(xs, ys)
          if finite(a) and finite(b) then
            local lo, hi = math.huge, -math.huge
            for _, x in ipairs(xs) do lo, hi = math.min(lo, x), math.max(hi, x) end
            add('<line x1="', f2(px(lo)), '" y1="', f2(py(a + b * lo)), '" x2="', f2(px(hi)), '" y2="', f2(py(a + b * hi)),
              '" stroke="', color, '" stroke-width="1.5" stroke-dasharray="5 3"/>')
            fits[si] = { a = a, b = b }
          end
        end
      end
    end
    add('</g>')
  end

  -- legend
  if #legend > 0 then
    local lx, ly = R + 14, T + 6
    add('<g font-size="12">')
    for k, si in ipairs(legend) do
      local s = series[si]
      local color = s.color or SVG.palette[(si - 1) % #SVG.palette + 1]
      local y = ly + (k - 1) * 20
      if kind == 'bar' then
        add('<rect x="', lx, '" y="', y, '" width="14" height="12" fill="', color, '"/>')
      else
        if kind == 'line' then
          add('<line x1="', lx, '" y1="', y + 6, '" x2="', lx + 22, '" y2="', y + 6, '" stroke="', color, '" stroke-width="2"',
            s.dashed and ' stroke-dasharray="6 4"' or '', '/>')
        end
        add('<circle cx="', lx + 11, '" cy="', y + 6, '" r="4" fill="', color, '"/>')
      end
      add('<text x="', lx + 28, '" y="', y + 10, '">', esc(s.label), '</text>')
    end
    add('</g>')
  end
  add('</svg>')
  return table.concat(o, '\n') .. '\n', fits
end

return SVG
