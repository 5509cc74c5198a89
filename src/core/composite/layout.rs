//! Stage layout of the room composite (egress path: N stage participants -> tile rectangles in
//! the output picture). Pure geometry: a grid of equal cells, each participant's picture fitted
//! into its cell with its aspect ratio kept (letterbox/pillarbox), all edges even for 4:2:0.

/// A pixel rectangle: `x, y` top-left, `w` x `h` size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: usize,
    /// Top row.
    pub y: usize,
    /// Width in pixels.
    pub w: usize,
    /// Height in pixels.
    pub h: usize,
}

impl Rect {
    /// A rectangle.
    pub const fn new(x: usize, y: usize, w: usize, h: usize) -> Self {
        Self { x, y, w, h }
    }

    /// The centre pixel.
    pub fn center(&self) -> (usize, usize) {
        (self.x + self.w / 2, self.y + self.h / 2)
    }

    /// Whether `(x, y)` lies inside.
    pub fn contains(&self, x: usize, y: usize) -> bool {
        x >= self.x && x < self.x + self.w && y >= self.y && y < self.y + self.h
    }

    /// The part inside a `width` x `height` picture, every edge rounded down to even.
    pub fn clamped(&self, width: usize, height: usize) -> Rect {
        let x = (self.x & !1).min(width);
        let y = (self.y & !1).min(height);
        let w = (self.w & !1).min(width - x);
        let h = (self.h & !1).min(height - y);
        Rect { x, y, w, h }
    }
}

fn even(v: usize) -> usize {
    v & !1
}

/// The grid cells for `n` tiles in a `width` x `height` picture: `ceil(sqrt(n))` columns, as
/// many rows as needed; a last row with fewer tiles is centred. Empty for `n == 0`.
pub fn grid(n: usize, width: usize, height: usize) -> Vec<Rect> {
    let mut cells = Vec::with_capacity(n);
    if n == 0 {
        return cells;
    }
    let cols = (1..=n).find(|c| c * c >= n).unwrap_or(n);
    let rows = n.div_ceil(cols);
    let (cw, ch) = (even(width / cols), even(height / rows));
    // Centre the whole grid when the division left spare pixels.
    let (ox, oy) = (
        even((width - cw * cols) / 2),
        even((height - ch * rows) / 2),
    );
    for i in 0..n {
        let (row, col) = (i / cols, i % cols);
        let in_row = if row == rows - 1 {
            n - row * cols
        } else {
            cols
        };
        let shift = even((cols - in_row) * cw / 2);
        cells.push(Rect::new(ox + shift + col * cw, oy + row * ch, cw, ch));
    }
    cells
}

/// Where a `src_w` x `src_h` picture goes inside `cell`: as large as fits with its aspect ratio
/// kept, centred; edges even. A degenerate source gets the whole cell.
pub fn fit(src_w: usize, src_h: usize, cell: Rect) -> Rect {
    if src_w == 0 || src_h == 0 || cell.w == 0 || cell.h == 0 {
        return cell;
    }
    // Compare src_w / src_h with cell.w / cell.h without floating point.
    let (w, h) = if src_w * cell.h >= cell.w * src_h {
        (cell.w, even(cell.w * src_h / src_w).max(2).min(cell.h))
    } else {
        (even(cell.h * src_w / src_h).max(2).min(cell.w), cell.h)
    };
    Rect::new(
        cell.x + even((cell.w - w) / 2),
        cell.y + even((cell.h - h) / 2),
        w,
        h,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tile_fills_the_picture() {
        assert_eq!(grid(1, 1280, 720), vec![Rect::new(0, 0, 1280, 720)]);
        assert_eq!(
            fit(640, 360, Rect::new(0, 0, 1280, 720)),
            Rect::new(0, 0, 1280, 720)
        );
    }

    #[test]
    fn two_tiles_side_by_side_letterboxed() {
        let cells = grid(2, 1280, 720);
        assert_eq!(
            cells,
            vec![Rect::new(0, 0, 640, 720), Rect::new(640, 0, 640, 720)]
        );
        // A 16:9 picture in a 640x720 cell: full width, 360 high, centred vertically.
        assert_eq!(fit(1280, 720, cells[1]), Rect::new(640, 180, 640, 360));
    }

    #[test]
    fn four_tiles_make_a_two_by_two_grid_of_native_640x360() {
        let cells = grid(4, 1280, 720);
        assert_eq!(cells[3], Rect::new(640, 360, 640, 360));
        for cell in &cells {
            assert_eq!(fit(640, 360, *cell), *cell, "no scaling needed");
        }
    }

    #[test]
    fn three_tiles_centre_the_last_row() {
        let cells = grid(3, 1280, 720);
        assert_eq!(cells[0], Rect::new(0, 0, 640, 360));
        assert_eq!(cells[1], Rect::new(640, 0, 640, 360));
        assert_eq!(cells[2], Rect::new(320, 360, 640, 360));
    }

    #[test]
    fn tall_pictures_are_pillarboxed_and_edges_are_even() {
        let r = fit(360, 640, Rect::new(0, 0, 1280, 720));
        assert_eq!(r.h, 720);
        assert_eq!(r.w, 404);
        assert_eq!(r.x, 438);
        for cell in grid(7, 1278, 718) {
            assert_eq!(cell.x % 2 + cell.y % 2 + cell.w % 2 + cell.h % 2, 0);
            assert!(cell.x + cell.w <= 1278 && cell.y + cell.h <= 718);
        }
        assert!(grid(0, 1280, 720).is_empty());
        assert_eq!(fit(0, 0, Rect::new(2, 2, 8, 8)), Rect::new(2, 2, 8, 8));
    }

    #[test]
    fn clamped_keeps_rectangles_inside() {
        let r = Rect::new(7, 7, 100, 100).clamped(20, 10);
        assert_eq!(r, Rect::new(6, 6, 14, 4));
        assert!(r.contains(6, 6) && !r.contains(20, 6));
    }
}
