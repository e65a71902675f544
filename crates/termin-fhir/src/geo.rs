//! Places on the Earth: WGS84 positions as `Location.position` holds them, great-circle
//! distances on a sphere of the Earth's mean radius, and R5's `near` value
//! `latitude|longitude|distance|unit`. Shared by `$findHSP` and the `near` search parameter.

use serde_json::{Map, Value};
use std::f64::consts::PI;

/// The Earth's mean radius (IUGG), in km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// The distance that counts as near when a `near` value names none.
pub const DEFAULT_NEAR_RADIUS_KM: f64 = 10.0;

/// The distance units a `near` value may name (UCUM), with their length in km. R5 asks for
/// `km` (the default) and recommends `[mi_us]`.
pub const DISTANCE_UNITS: [(&str, f64); 4] = [("km", 1.0), ("m", 0.001), ("[mi_i]", 1.609_344), ("[mi_us]", 1.609_347_218_694)];

/// A point on the Earth in degrees (WGS84, as `Location.position`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub latitude: f64,
    pub longitude: f64,
}

impl Point {
    /// The point, when both coordinates are finite and in range (latitude ±90, longitude ±180).
    pub fn new(latitude: f64, longitude: f64) -> Option<Point> {
        let valid = latitude.is_finite() && longitude.is_finite() && latitude.abs() <= 90.0 && longitude.abs() <= 180.0;
        valid.then_some(Point { latitude, longitude })
    }

    /// The point on the unit sphere, as `(x, y, z)`: straight-line (chord) distances between
    /// these grow with great-circle distances, and need no trigonometry to compare.
    pub fn unit_vector(self) -> [f64; 3] {
        let (latitude, longitude) = (self.latitude.to_radians(), self.longitude.to_radians());
        [latitude.cos() * longitude.cos(), latitude.cos() * longitude.sin(), latitude.sin()]
    }
}

/// The great-circle distance in km (haversine formula).
pub fn distance_km(a: Point, b: Point) -> f64 {
    let (lat_a, lat_b) = (a.latitude.to_radians(), b.latitude.to_radians());
    let half_dlat = (lat_b - lat_a) / 2.0;
    let half_dlon = (b.longitude - a.longitude).to_radians() / 2.0;
    let h = half_dlat.sin().powi(2) + lat_a.cos() * lat_b.cos() * half_dlon.sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// The squared straight-line distance between two points of the unit sphere.
pub fn chord_squared(a: [f64; 3], b: [f64; 3]) -> f64 {
    a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum()
}

/// A Location's `position`, when it has a valid one.
pub fn position(location: &Map<String, Value>) -> Option<Point> {
    let position = location.get("position")?;
    Point::new(position.get("latitude")?.as_f64()?, position.get("longitude")?.as_f64()?)
}

/// A centre and the distance around it that counts as near.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    pub centre: Point,
    pub radius_km: f64,
}

/// Latitudes and (unless the area reaches a pole or the antimeridian) longitudes, in degrees,
/// that hold every point of a [`Near`] area.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub latitudes: (f64, f64),
    pub longitudes: Option<(f64, f64)>,
}

/// Widens the box by about 0.1 mm, so rounding never leaves out a point the exact test keeps.
const BOX_MARGIN_DEGREES: f64 = 1e-9;

impl Near {
    /// The radius as an angle at the Earth's centre, in radians (at most half a turn).
    fn angle(&self) -> f64 {
        (self.radius_km / EARTH_RADIUS_KM).min(PI)
    }

    /// Points within the radius are those whose [`chord_squared`] from the centre is at most this.
    pub fn max_chord_squared(&self) -> f64 {
        (2.0 * (self.angle() / 2.0).sin()).powi(2)
    }

    pub fn contains(&self, point: Point) -> bool {
        chord_squared(self.centre.unit_vector(), point.unit_vector()) <= self.max_chord_squared()
    }

    pub fn bounding_box(&self) -> BoundingBox {
        let angle = self.angle();
        let low = self.centre.latitude - angle.to_degrees() - BOX_MARGIN_DEGREES;
        let high = self.centre.latitude + angle.to_degrees() + BOX_MARGIN_DEGREES;
        let latitudes = (low.max(-90.0), high.min(90.0));
        if low <= -90.0 || high >= 90.0 {
            return BoundingBox { latitudes, longitudes: None };
        }
        // The widest longitude difference on the circle (it touches that meridian at a tangent).
        let spread = (angle.sin() / self.centre.latitude.to_radians().cos()).min(1.0).asin().to_degrees();
        let west = self.centre.longitude - spread - BOX_MARGIN_DEGREES;
        let east = self.centre.longitude + spread + BOX_MARGIN_DEGREES;
        let longitudes = (west >= -180.0 && east <= 180.0).then_some((west, east));
        BoundingBox { latitudes, longitudes }
    }
}

/// The distance from `point` to the nearest centre that has it within its radius.
pub fn nearest(centres: &[Near], point: Point) -> Option<f64> {
    centres
        .iter()
        .map(|near| (near, distance_km(near.centre, point)))
        .filter(|(near, distance)| *distance <= near.radius_km)
        .map(|(_, distance)| distance)
        .min_by(f64::total_cmp)
}

/// A distance in km from a number and a unit of [`DISTANCE_UNITS`] (none: km).
pub fn kilometres(distance: &str, unit: &str) -> Result<f64, String> {
    let unit = unit.trim();
    let per_unit = match DISTANCE_UNITS.iter().find(|(code, _)| unit.is_empty() || *code == unit) {
        Some((_, per_unit)) => *per_unit,
        None => {
            let known: Vec<&str> = DISTANCE_UNITS.iter().map(|(code, _)| *code).collect();
            return Err(format!("unit {unit:?} is not one of {}", known.join(", ")));
        }
    };
    match distance.trim().parse::<f64>() {
        Ok(d) if d.is_finite() && d >= 0.0 => Ok(d * per_unit),
        _ => Err(format!("distance {distance:?} is not a number of at least 0")),
    }
}

/// R5's `near` value `latitude|longitude|distance|unit`: the centre and, when given, the
/// distance in km.
pub fn parse_near(value: &str) -> Result<(Point, Option<f64>), String> {
    let parts: Vec<&str> = value.split('|').collect();
    let coordinate = |i: usize| parts.get(i).and_then(|text| text.trim().parse::<f64>().ok());
    let centre = match (coordinate(0), coordinate(1)) {
        (Some(latitude), Some(longitude)) => Point::new(latitude, longitude),
        _ => None,
    };
    let Some(centre) = centre.filter(|_| parts.len() <= 4) else {
        return Err(format!(
            "near must be latitude|longitude|distance|unit (degrees WGS84, latitude within ±90, longitude within \
             ±180; distance and unit optional), got {value:?}"
        ));
    };
    let radius = match parts.get(2) {
        Some(distance) if !distance.trim().is_empty() => Some(kilometres(distance, parts.get(3).copied().unwrap_or(""))?),
        _ => None,
    };
    Ok((centre, radius))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VIENNA: Point = Point { latitude: 48.2082, longitude: 16.3738 };
    const SALZBURG: Point = Point { latitude: 47.8095, longitude: 13.0550 };
    const LINZ: Point = Point { latitude: 48.3069, longitude: 14.2858 };

    #[test]
    fn vienna_to_salzburg_is_about_250_km() {
        let d = distance_km(VIENNA, SALZBURG);
        assert!((d - 251.0).abs() < 2.0, "{d}");
        assert_eq!(distance_km(VIENNA, VIENNA), 0.0);
        // Antipodes: half the circumference, no NaN from rounding.
        let antipode = Point { latitude: -VIENNA.latitude, longitude: VIENNA.longitude - 180.0 };
        assert!((distance_km(VIENNA, antipode) - PI * EARTH_RADIUS_KM).abs() < 1.0);
    }

    #[test]
    fn the_nearest_centre_that_reaches_counts() {
        let centres = [Near { centre: VIENNA, radius_km: 10.0 }, Near { centre: SALZBURG, radius_km: 300.0 }];
        assert_eq!(nearest(&centres, VIENNA), Some(0.0));
        let from_salzburg = nearest(&centres, LINZ).unwrap();
        assert!((from_salzburg - distance_km(SALZBURG, LINZ)).abs() < 1e-9);
        assert_eq!(nearest(&centres[..1], LINZ), None);
    }

    #[test]
    fn reads_only_valid_positions() {
        let Value::Object(ok) = json!({"position": {"latitude": 47.7, "longitude": 13.4}}) else { unreachable!() };
        assert_eq!(position(&ok), Some(Point { latitude: 47.7, longitude: 13.4 }));
        for bad in [json!({}), json!({"position": {"latitude": 91, "longitude": 0}}), json!({"position": {"latitude": "47"}})] {
            let Value::Object(bad) = bad else { unreachable!() };
            assert_eq!(position(&bad), None);
        }
    }

    /// Points spread over the globe, poles and antimeridian included.
    fn grid() -> impl Iterator<Item = Point> {
        (-18..=18).flat_map(|lat| (-36..=36).map(move |lon| Point::new(f64::from(lat) * 5.0, f64::from(lon) * 5.0).unwrap()))
    }

    #[test]
    fn the_chord_test_agrees_with_the_great_circle_distance() {
        for centre in [VIENNA, Point { latitude: 89.0, longitude: 179.0 }, Point { latitude: -10.0, longitude: -179.5 }] {
            for radius_km in [0.0, 10.0, 600.0, 5_000.0, 30_000.0] {
                let near = Near { centre, radius_km };
                for point in grid().chain([centre, VIENNA, LINZ]) {
                    let distance = distance_km(centre, point);
                    // Away from the border (1 m), both tests say the same.
                    if (distance - radius_km).abs() > 0.001 {
                        assert_eq!(near.contains(point), distance <= radius_km, "{centre:?} {radius_km} {point:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_bounding_box_holds_every_point_within_the_radius() {
        let inside = |b: &BoundingBox, p: Point| {
            (b.latitudes.0..=b.latitudes.1).contains(&p.latitude)
                && b.longitudes.is_none_or(|(west, east)| (west..=east).contains(&p.longitude))
        };
        for centre in grid().step_by(7).chain([VIENNA]) {
            for radius_km in [10.0, 300.0, 2_500.0] {
                let near = Near { centre, radius_km };
                let bounds = near.bounding_box();
                for point in grid() {
                    if near.contains(point) {
                        assert!(inside(&bounds, point), "{centre:?} {radius_km} {point:?} {bounds:?}");
                    }
                }
            }
        }
        // Around Vienna, 10 km is a small box: Linz is outside.
        let bounds = Near { centre: VIENNA, radius_km: 10.0 }.bounding_box();
        assert!(bounds.longitudes.is_some() && !inside(&bounds, LINZ));
    }

    #[test]
    fn near_values_as_r5_writes_them() {
        assert_eq!(parse_near("48.2|16.37"), Ok((Point { latitude: 48.2, longitude: 16.37 }, None)));
        assert_eq!(parse_near("48.2|16.37||"), Ok((Point { latitude: 48.2, longitude: 16.37 }, None)));
        assert_eq!(parse_near("48.2|16.37|5"), Ok((Point { latitude: 48.2, longitude: 16.37 }, Some(5.0))));
        assert_eq!(parse_near("48.2|16.37|500|m").unwrap().1, Some(0.5));
        assert!((parse_near("0|0|10|[mi_us]").unwrap().1.unwrap() - 16.093).abs() < 0.001);
        assert!((parse_near("0|0|10|[mi_i]").unwrap().1.unwrap() - 16.093).abs() < 0.001);
        for bad in ["abc", "48.2", "91|0|1|km", "0|181", "0|0|-1|km", "0|0|1|furlong", "0|0|1|km|x", "NaN|0", "0|0|inf"] {
            assert!(parse_near(bad).is_err(), "{bad}");
        }
    }
}
