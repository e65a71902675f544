//! "Near a place" for `$findHSP`: great-circle distances between `Location.position`s.

use serde_json::{Map, Value};

/// The radius used when the client names a centre but no distance.
pub const DEFAULT_RADIUS_KM: f64 = 10.0;

/// The Earth's mean radius (IUGG), in km.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A point on the Earth in degrees (WGS84, as `Location.position`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub latitude: f64,
    pub longitude: f64,
}

/// A centre and the distance around it that counts as near.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    pub centre: Point,
    pub radius_km: f64,
}

/// The great-circle distance in km (haversine formula).
pub fn distance_km(a: Point, b: Point) -> f64 {
    let (lat_a, lat_b) = (a.latitude.to_radians(), b.latitude.to_radians());
    let half_dlat = (lat_b - lat_a) / 2.0;
    let half_dlon = (b.longitude - a.longitude).to_radians() / 2.0;
    let h = half_dlat.sin().powi(2) + lat_a.cos() * lat_b.cos() * half_dlon.sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// A Location's `position`, when it has a valid one.
pub fn position(location: &Map<String, Value>) -> Option<Point> {
    let position = location.get("position")?;
    let latitude = position.get("latitude")?.as_f64()?;
    let longitude = position.get("longitude")?.as_f64()?;
    ((-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude)).then_some(Point { latitude, longitude })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VIENNA: Point = Point { latitude: 48.2082, longitude: 16.3738 };
    const SALZBURG: Point = Point { latitude: 47.8095, longitude: 13.0550 };

    #[test]
    fn vienna_to_salzburg_is_about_250_km() {
        let d = distance_km(VIENNA, SALZBURG);
        assert!((d - 251.0).abs() < 2.0, "{d}");
        assert_eq!(distance_km(VIENNA, VIENNA), 0.0);
        // Antipodes: half the circumference, no NaN from rounding.
        let antipode = Point { latitude: -VIENNA.latitude, longitude: VIENNA.longitude - 180.0 };
        assert!((distance_km(VIENNA, antipode) - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1.0);
    }

    #[test]
    fn the_nearest_centre_that_reaches_counts() {
        let centres = [Near { centre: VIENNA, radius_km: 10.0 }, Near { centre: SALZBURG, radius_km: 300.0 }];
        assert_eq!(nearest(&centres, VIENNA), Some(0.0));
        let linz = Point { latitude: 48.3069, longitude: 14.2858 };
        let from_salzburg = nearest(&centres, linz).unwrap();
        assert!((from_salzburg - distance_km(SALZBURG, linz)).abs() < 1e-9);
        assert_eq!(nearest(&centres[..1], linz), None);
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
}
