//! Tests of the cosine-similarity embedding index.

use retort_dedup::{CosineIndex, DedupError};

/// A unit vector in dimension 4 at angle `deg` (degrees) from the x axis in the x-y plane.
fn at(deg: f32) -> Vec<f32> {
    let r = deg.to_radians();
    vec![r.cos(), r.sin(), 0.0, 0.0]
}

#[test]
fn threshold_decides_by_angle() {
    // cos(25.84°) = 0.9. (angle of the candidate from the kept vector, rejected?)
    let cases: &[(f32, bool)] = &[(0.0, true), (10.0, true), (25.0, true), (26.5, false), (45.0, false), (180.0, false)];
    for &(deg, rejected) in cases {
        let mut index = CosineIndex::new(0.9).unwrap();
        assert_eq!(index.insert_if_new(1, &at(0.0)).unwrap(), None);
        let got = index.insert_if_new(2, &at(deg)).unwrap();
        assert_eq!(got.is_some(), rejected, "angle {deg}: {got:?}");
        if let Some((id, sim)) = got {
            assert_eq!(id, 1);
            assert!((sim - deg.to_radians().cos()).abs() < 1e-5);
        }
        assert_eq!(index.len(), if rejected { 1 } else { 2 });
    }
}

#[test]
fn vectors_are_normalised_and_nearest_is_ordered() {
    let mut index = CosineIndex::new(0.99).unwrap();
    for (id, deg) in [(10, 0.0), (11, 30.0), (12, 60.0), (13, 90.0), (14, 120.0)] {
        // Scaled inputs: the index compares directions only.
        let v: Vec<f32> = at(deg).iter().map(|x| x * 7.5).collect();
        assert_eq!(index.insert_if_new(id, &v).unwrap(), None);
    }
    let got = index.nearest(&at(50.0), 3).unwrap();
    let ids: Vec<u64> = got.iter().map(|&(id, _)| id).collect();
    assert_eq!(ids, vec![12, 11, 13]);
    assert!((got[0].1 - 10f32.to_radians().cos()).abs() < 1e-5);
    assert_eq!(index.nearest(&at(50.0), 100).unwrap().len(), 5);
    assert!(index.nearest(&at(50.0), 0).unwrap().is_empty());
    let max = index.max_similarity(&at(180.0)).unwrap().unwrap();
    assert!((max - 60f32.to_radians().cos()).abs() < 1e-5);
}

#[test]
fn long_vectors_match_a_naive_dot_product() {
    // Dimension 389 exercises the unrolled loop and its remainder.
    let dim = 389;
    let a: Vec<f32> = (0..dim).map(|i| ((i * 37 % 101) as f32 - 50.0) / 13.0).collect();
    let b: Vec<f32> = (0..dim).map(|i| ((i * 53 % 97) as f32 - 48.0) / 11.0).collect();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let naive = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>() / (norm(&a) * norm(&b));
    let mut index = CosineIndex::new(1.0).unwrap();
    index.insert(1, &a).unwrap();
    let got = index.nearest(&b, 1).unwrap();
    assert!((got[0].1 as f64 - naive).abs() < 1e-5, "{} vs {naive}", got[0].1);
}

#[test]
fn ties_prefer_the_earliest() {
    let mut index = CosineIndex::new(0.5).unwrap();
    index.insert(5, &at(0.0)).unwrap();
    index.insert(6, &at(0.0)).unwrap();
    assert_eq!(index.insert_if_new(7, &at(0.0)).unwrap(), Some((5, 1.0)));
    assert_eq!(index.nearest(&at(0.0), 2).unwrap()[0].0, 5);
}

#[test]
fn bad_inputs_are_errors() {
    assert!(matches!(CosineIndex::new(1.5), Err(DedupError::InvalidConfig { .. })));
    let mut index = CosineIndex::new(0.9).unwrap();
    assert!(matches!(index.insert(1, &[]), Err(DedupError::BadEmbedding { .. })));
    assert!(matches!(index.insert(1, &[0.0, 0.0]), Err(DedupError::BadEmbedding { .. })));
    assert!(matches!(index.insert(1, &[f32::NAN, 1.0]), Err(DedupError::BadEmbedding { .. })));
    assert!(index.is_empty());
    index.insert(1, &[1.0, 0.0, 0.0]).unwrap();
    assert_eq!(index.dim(), 3);
    let err = index.insert_if_new(2, &[1.0, 0.0]).unwrap_err();
    assert_eq!(err, DedupError::DimensionMismatch { operation: "CosineIndex::insert_if_new", expected: 3, found: 2 });
    assert!(err.to_string().contains("expected an embedding of dimension 3, found 2"));
    assert!(matches!(index.nearest(&[1.0], 1), Err(DedupError::DimensionMismatch { .. })));
}
