//! Renders a QR string for people: SVG and PNG for pages and the API, block
//! characters for the terminal (`wagate pair`).

use qrcode::{Color, QrCode};

/// Pixels per QR module in PNGs, and the quiet zone in modules.
const SCALE: usize = 8;
const QUIET: usize = 4;

fn code(data: &str) -> Result<QrCode, String> {
    QrCode::new(data.as_bytes()).map_err(|e| format!("cannot encode QR: {e}"))
}

pub fn svg(data: &str) -> Result<String, String> {
    Ok(code(data)?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(256, 256)
        .build())
}

pub fn png(data: &str) -> Result<Vec<u8>, String> {
    let c = code(data)?;
    let w = c.width();
    let colors = c.to_colors();
    let side = (w + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for y in 0..w {
        for x in 0..w {
            if colors[y * w + x] == Color::Dark {
                for dy in 0..SCALE {
                    let row = (y + QUIET) * SCALE + dy;
                    let start = row * side + (x + QUIET) * SCALE;
                    pixels[start..start + SCALE].fill(0);
                }
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, side as u32, side as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(|e| e.to_string())?;
        wr.write_image_data(&pixels).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Two module rows per text line with half blocks; light background.
pub fn terminal(data: &str) -> Result<String, String> {
    let c = code(data)?;
    let w = c.width();
    let colors = c.to_colors();
    let dark = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < w
            && colors[y as usize * w + x as usize] == Color::Dark
    };
    let q = 2isize;
    let mut s = String::new();
    let mut y = -q;
    while y < w as isize + q {
        for x in -q..w as isize + q {
            s.push(match (dark(x, y), dark(x, y + 1)) {
                (false, false) => '█',
                (true, false) => '▄',
                (false, true) => '▀',
                (true, true) => ' ',
            });
        }
        s.push('\n');
        y += 2;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_all_formats() {
        let data = "2@abc,def,ghi,jkl,1";
        assert!(super::svg(data).unwrap().starts_with("<?xml"));
        let png = super::png(data).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let t = super::terminal(data).unwrap();
        assert!(t.lines().count() > 10);
    }
}
