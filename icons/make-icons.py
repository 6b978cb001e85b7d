#!/usr/bin/env python3
"""Draw Clawkeeper's icons as RGBA PNGs, with nothing but the standard library.

    python3 icons/make-icons.py        # writes next to this script

App icon (32, 128, 256 = 128x128@2x, 512 = icon.png): a shield with three claw
marks on a rounded square. Tray icons (tray/<state>.png, 32x32 and @2x 64x64):
the shield in the state's colour with a white mark, so the state never rests on
colour alone -- starting: three dots, healthy: a tick, degraded: "!",
stopped: pause bars, error: a cross.

Shapes are coverage functions in unit coordinates (0..1), sampled 5x5 per pixel
for smooth edges, then composited with "over".
"""

import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SS = 5  # supersampling per axis

# ---------- shapes: f(x, y) -> bool, unit square ----------


def rounded_rect(x0, y0, x1, y1, r):
    def f(x, y):
        if x < x0 or x > x1 or y < y0 or y > y1:
            return False
        cx = min(max(x, x0 + r), x1 - r)
        cy = min(max(y, y0 + r), y1 - r)
        return (x - cx) ** 2 + (y - cy) ** 2 <= r * r

    return f


def shield(cx=0.5, top=0.08, bottom=0.94, half=0.36, shoulder=0.50, r=0.07):
    """Flat-topped shield: rounded top corners, straight sides, elliptical point."""

    def f(x, y):
        if y < top or y > bottom:
            return False
        dx = abs(x - cx)
        if y <= shoulder:
            if dx > half:
                return False
            # rounded top corners
            if y < top + r and dx > half - r:
                return (dx - (half - r)) ** 2 + (y - (top + r)) ** 2 <= r * r
            return True
        t = (y - shoulder) / (bottom - shoulder)
        # sides curve in to the point; the power keeps the point fairly sharp
        w = half * (1 - t**1.6) ** 0.75
        return dx <= w

    return f


def _dist_seg(px, py, ax, ay, bx, by):
    vx, vy = bx - ax, by - ay
    wx, wy = px - ax, py - ay
    L = vx * vx + vy * vy
    t = 0.0 if L == 0 else max(0.0, min(1.0, (wx * vx + wy * vy) / L))
    dx, dy = px - (ax + t * vx), py - (ay + t * vy)
    return math.hypot(dx, dy)


def polyline(points, width):
    r = width / 2
    segs = list(zip(points, points[1:]))
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    bx0, bx1, by0, by1 = min(xs) - r, max(xs) + r, min(ys) - r, max(ys) + r

    def f(x, y):
        if x < bx0 or x > bx1 or y < by0 or y > by1:
            return False
        return any(_dist_seg(x, y, a[0], a[1], b[0], b[1]) <= r for a, b in segs)

    return f


def bezier(p0, p1, p2, n=12):
    pts = []
    for i in range(n + 1):
        t = i / n
        a = (1 - t) ** 2
        b = 2 * (1 - t) * t
        c = t * t
        pts.append((a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]))
    return pts


def circle(cx, cy, r):
    return lambda x, y: (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def union(*fs):
    return lambda x, y: any(f(x, y) for f in fs)


def transformed(f, scale, ox, oy):
    """f drawn at `scale` with its unit square's origin at (ox, oy)."""
    return lambda x, y: f((x - ox) / scale, (y - oy) / scale)


# ---------- marks ----------


def claw_marks(width=0.085):
    """Three slightly curved, slanted slashes: the 'claw'."""
    marks = []
    for i, dx in enumerate((-0.14, 0.0, 0.14)):
        lift = 0.04 if i == 1 else 0.0
        p0 = (0.42 + dx, 0.24 - lift)
        p2 = (0.58 + dx - 0.14, 0.74 - lift)
        p1 = (0.56 + dx, 0.48 - lift)
        marks.append(polyline(bezier(p0, p1, p2), width))
    return union(*marks)


def tick():
    return polyline([(0.30, 0.47), (0.45, 0.62), (0.71, 0.33)], 0.11)


def bang():
    return union(polyline([(0.5, 0.22), (0.5, 0.52)], 0.12), circle(0.5, 0.68, 0.07))


def cross():
    return union(
        polyline([(0.33, 0.27), (0.67, 0.61)], 0.11),
        polyline([(0.67, 0.27), (0.33, 0.61)], 0.11),
    )


def pause():
    return union(
        rounded_rect(0.33, 0.24, 0.44, 0.62, 0.03),
        rounded_rect(0.56, 0.24, 0.67, 0.62, 0.03),
    )


def dots():
    return union(circle(0.31, 0.44, 0.065), circle(0.5, 0.44, 0.065), circle(0.69, 0.44, 0.065))


# ---------- raster ----------


def render(size, layers):
    """layers: [(shape, (r, g, b, a))] bottom to top -> RGBA bytes rows."""
    px = [[0.0, 0.0, 0.0, 0.0] for _ in range(size * size)]
    n = SS * SS
    for j in range(size):
        for i in range(size):
            out = px[j * size + i]
            for shape, (r, g, b, a) in layers:
                hits = 0
                for sy in range(SS):
                    y = (j + (sy + 0.5) / SS) / size
                    for sx in range(SS):
                        x = (i + (sx + 0.5) / SS) / size
                        if shape(x, y):
                            hits += 1
                if not hits:
                    continue
                sa = (a / 255) * hits / n
                da = out[3]
                oa = sa + da * (1 - sa)
                for k, c in enumerate((r, g, b)):
                    out[k] = (c * sa + out[k] * da * (1 - sa)) / oa if oa else 0
                out[3] = oa
    rows = []
    for j in range(size):
        row = bytearray()
        for i in range(size):
            r, g, b, a = px[j * size + i]
            row += bytes((round(r), round(g), round(b), round(a * 255)))
        rows.append(bytes(row))
    return rows


def write_png(path, size, rows):
    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + r for r in rows)
    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))  # 8-bit RGBA
    png += chunk(b"IDAT", zlib.compress(raw, 9))
    png += chunk(b"IEND", b"")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(png)
    print("wrote", os.path.relpath(path, HERE), f"{size}x{size}")


# ---------- the icons ----------

INK = (0x1F, 0x2A, 0x44, 255)  # deep navy
TEAL = (0x2B, 0xB3, 0xA3, 255)
WHITE = (255, 255, 255, 255)

STATES = {
    # state: (shield colour, mark)
    "starting": ((0x5B, 0x7B, 0xB5, 255), dots),  # calm blue
    "healthy": ((0x23, 0x9B, 0x56, 255), tick),  # green
    "degraded": ((0xE0, 0x9A, 0x16, 255), bang),  # amber
    "stopped": ((0x80, 0x86, 0x8F, 255), pause),  # grey
    "error": ((0xD0, 0x3B, 0x3B, 255), cross),  # red
}


def app_icon(size):
    bg = rounded_rect(0.04, 0.04, 0.96, 0.96, 0.22)
    sh = transformed(shield(), 0.74, 0.13, 0.12)
    claws = transformed(claw_marks(), 0.74, 0.13, 0.12)
    return render(size, [(bg, INK), (sh, TEAL), (claws, WHITE)])


def tray_icon(size, state):
    colour, mark = STATES[state]
    # a thin dark rim keeps the glyph readable on light and dark panels
    rim = shield(top=0.02, bottom=0.99, half=0.45, shoulder=0.50, r=0.10)
    body = shield(top=0.07, bottom=0.93, half=0.40, shoulder=0.50, r=0.08)
    return render(size, [(rim, (0x10, 0x14, 0x1C, 200)), (body, colour), (mark(), WHITE)])


def main():
    for size, name in ((32, "32x32.png"), (128, "128x128.png"), (256, "128x128@2x.png"), (512, "icon.png")):
        write_png(os.path.join(HERE, name), size, app_icon(size))
    for state in STATES:
        write_png(os.path.join(HERE, "tray", f"{state}.png"), 32, tray_icon(32, state))
        write_png(os.path.join(HERE, "tray", f"{state}@2x.png"), 64, tray_icon(64, state))


if __name__ == "__main__":
    main()
