//! Sentence embeddings as steps use them (`dedup` by meaning, `fit`'s MiniLM features): one
//! trait, two sources, each behind its feature. all-MiniLM-L6-v2 through candle (`embed`), or a
//! GGUF model through llama.cpp's worker (`local`). Without the feature, asking for it is an
//! error that names the feature.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Texts in, one vector each out.
pub(crate) trait Embed: Send + Sync {
    /// Length of every vector.
    fn dim(&self) -> usize;
    /// One vector per text, in input order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String>;
}

#[cfg(feature = "embed")]
struct MiniLm(retort_embed::MiniLmEmbedder);

#[cfg(feature = "embed")]
impl Embed for MiniLm {
    fn dim(&self) -> usize {
        retort_embed::Embedder::dim(&self.0)
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        retort_embed::Embedder::embed(&self.0, texts).map_err(|error| error.to_string())
    }
}

/// The MiniLM embedder from `dir` (default: the installed all-MiniLM-L6-v2), loaded once per
/// process and shared.
pub(crate) fn minilm(dir: Option<PathBuf>) -> Result<Arc<dyn Embed>, String> {
    #[cfg(feature = "embed")]
    {
        type Loaded = Mutex<Option<(Option<PathBuf>, Arc<dyn Embed>)>>;
        static EMBEDDER: Loaded = Mutex::new(None);
        let mut slot = EMBEDDER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((loaded_from, embedder)) = slot.as_ref() {
            if *loaded_from == dir {
                return Ok(embedder.clone());
            }
        }
        let model = match &dir {
            Some(dir) => retort_embed::MiniLmEmbedder::load(dir),
            None => retort_embed::MiniLmEmbedder::load_default(),
        }
        .map_err(|error| error.to_string())?;
        let embedder: Arc<dyn Embed> = Arc::new(MiniLm(model));
        *slot = Some((dir, embedder.clone()));
        Ok(embedder)
    }
    #[cfg(not(feature = "embed"))]
    {
        let _ = (dir, Mutex::new(()));
        Err(missing("MiniLM embeddings", "embed"))
    }
}

/// An embedder over a GGUF model (a known local model's name or a path), run by a worker.
pub(crate) fn gguf(model: &str) -> Result<Arc<dyn Embed>, String> {
    #[cfg(feature = "local")]
    {
        Ok(Arc::new(crate::llm::gguf_embedder::GgufEmbedder::new(model)?))
    }
    #[cfg(not(feature = "local"))]
    {
        let _ = model;
        Err(missing("GGUF embeddings", "local"))
    }
}

/// Why `model` cannot be embedded with, checked without loading it.
pub(crate) fn gguf_problem(model: &str) -> Option<String> {
    #[cfg(feature = "local")]
    {
        retort_llama::resolve_model(model).err().map(|error| error.to_string())
    }
    #[cfg(not(feature = "local"))]
    {
        let _ = model;
        Some(missing("GGUF embeddings", "local"))
    }
}

/// Why a build of retort cannot embed with MiniLM, if it cannot.
pub(crate) fn minilm_problem() -> Option<String> {
    (!cfg!(feature = "embed")).then(|| missing("MiniLM embeddings", "embed"))
}

#[cfg_attr(all(feature = "embed", feature = "local"), allow(dead_code))]
fn missing(what: &str, feature: &str) -> String {
    format!("this build of retort has no {what} (it was built without the `{feature}` feature)")
}

/// `query`'s MiniLM embedding and retort-dedup's cosine index (as `dedup` by meaning uses it)
/// over the embeddings of `texts`, each under its position.
fn index_texts(query: &str, texts: &[String]) -> Result<(Vec<f32>, retort_dedup::CosineIndex), String> {
    let embedder = minilm(None)?;
    let mut all: Vec<&str> = vec![query];
    all.extend(texts.iter().map(String::as_str));
    let mut vectors = embedder.embed(&all)?;
    let mut index = retort_dedup::CosineIndex::new(1.0).map_err(|error| error.to_string())?;
    for (id, vector) in vectors[1..].iter().enumerate() {
        index.insert(id as u64, vector).map_err(|error| error.to_string())?;
    }
    Ok((vectors.swap_remove(0), index))
}

/// The largest cosine similarity, by MiniLM embeddings, between `text` and any of `others`
/// (0 for none).
pub(crate) fn max_cosine(text: &str, others: &[String]) -> Result<f64, String> {
    if others.is_empty() {
        return Ok(0.0);
    }
    let (query, index) = index_texts(text, others)?;
    let best = index.max_similarity(&query).map_err(|error| error.to_string())?;
    Ok(best.map_or(0.0, f64::from))
}

/// The positions of the `k` texts most similar to `query` by MiniLM embeddings, most similar
/// first; ties keep the texts' order.
pub(crate) fn nearest(query: &str, texts: &[String], k: usize) -> Result<Vec<usize>, String> {
    if texts.is_empty() || k == 0 {
        return Ok(Vec::new());
    }
    let (query, index) = index_texts(query, texts)?;
    let picked = index.nearest(&query, k).map_err(|error| error.to_string())?;
    Ok(picked.into_iter().map(|(id, _)| id as usize).collect())
}

/// Groups `texts` into at most `k` clusters by MiniLM embeddings (see [`kmeans`]): each text's
/// cluster number, the clusters numbered in the order of their first member. The grouping
/// depends on the set of texts, not on their order (they are clustered sorted, each distinct
/// text once), so every record that clusters the same items, in any order, sees the same groups.
pub(crate) fn clusters(texts: &[String], k: usize) -> Result<Vec<usize>, String> {
    if texts.is_empty() || k == 0 {
        return Ok(vec![0; texts.len()]);
    }
    let mut distinct: Vec<&str> = texts.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let groups = kmeans(&minilm(None)?.embed(&distinct)?, k);
    let group_of: std::collections::HashMap<&str, usize> = distinct.into_iter().zip(groups).collect();
    Ok(first_seen(texts.iter().map(|text| group_of[text.as_str()])))
}

/// Renumbers labels in the order each first appears.
fn first_seen(labels: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut renumber = std::collections::HashMap::new();
    labels
        .map(|label| {
            let next = renumber.len();
            *renumber.entry(label).or_insert(next)
        })
        .collect()
}

/// The position of the largest value; ties to the earlier one.
fn first_max(values: impl Iterator<Item = f64>) -> usize {
    values.enumerate().fold((0, f64::NEG_INFINITY), |best, (index, value)| if value > best.1 { (index, value) } else { best }).0
}

/// Spherical k-means, deterministic: the vectors are normalised, the first centre is the first
/// vector and each next one the vector least similar to the centres so far (farthest-first;
/// ties to the earlier vector), then Lloyd's steps (each vector to its most similar centre,
/// ties to the lower centre; each centre the normalised mean of its vectors, an emptied one kept)
/// until no vector moves, at most 100 times. Returns each vector's cluster, the clusters
/// renumbered in the order of their first member; at most `min(k, n)` clusters.
pub(crate) fn kmeans(vectors: &[Vec<f32>], k: usize) -> Vec<usize> {
    let unit = |vector: Vec<f64>| -> Vec<f64> {
        let norm = vector.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        vector.into_iter().map(|x| x / norm).collect()
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let points: Vec<Vec<f64>> = vectors.iter().map(|vector| unit(vector.iter().map(|x| f64::from(*x)).collect())).collect();
    let k = k.min(points.len());
    if k == 0 {
        return vec![0; points.len()];
    }
    let mut centres = vec![points[0].clone()];
    while centres.len() < k {
        // The least similar to its closest centre: the largest negated closeness.
        let farthest = first_max(points.iter().map(|point| -centres.iter().map(|centre| dot(point, centre)).fold(f64::MIN, f64::max)));
        centres.push(points[farthest].clone());
    }
    let assign = |centres: &[Vec<f64>]| -> Vec<usize> {
        points.iter().map(|point| first_max(centres.iter().map(|centre| dot(point, centre)))).collect()
    };
    let mut assignment = assign(&centres);
    for _ in 0..100 {
        for (index, centre) in centres.iter_mut().enumerate() {
            let mut sum = vec![0.0; centre.len()];
            for (point, _) in points.iter().zip(&assignment).filter(|(_, cluster)| **cluster == index) {
                sum.iter_mut().zip(point).for_each(|(total, x)| *total += x);
            }
            if sum.iter().any(|x| *x != 0.0) {
                *centre = unit(sum);
            }
        }
        let next = assign(&centres);
        if next == assignment {
            break;
        }
        assignment = next;
    }
    first_seen(assignment.into_iter())
}

/// Adds the template filters that embed: `a | cosine(b)` (MiniLM cosine similarity of two
/// texts), `a | max_cosine(list)` (the largest against a list of texts, 0 for an empty one),
/// `query | nearest(items, k, attribute)` (the k items most similar to the query: Voyager's
/// skill retrieval) and `text | cluster(items, k, attribute)` (the items of the cluster that
/// `text`, one of the items' texts, falls in when the items are grouped into `k` clusters by
/// [`kmeans`]: MATRIX's homophily groups).
pub(crate) fn register_filters(env: &mut minijinja::Environment<'static>) {
    use minijinja::{Error, ErrorKind};
    let fail = |message: String| Error::new(ErrorKind::InvalidOperation, format!("embedding: {message}"));
    env.add_filter("cosine", move |a: &str, b: &str| max_cosine(a, &[b.to_string()]).map_err(fail));
    env.add_filter("max_cosine", move |a: &str, others: Vec<minijinja::Value>| {
        let others: Vec<String> = others.iter().map(|value| value.as_str().map_or_else(|| value.to_string(), str::to_string)).collect();
        max_cosine(a, &others).map_err(fail)
    });
    env.add_filter("nearest", move |query: &str, items: Vec<minijinja::Value>, k: usize, attribute: Option<String>| {
        let texts: Vec<String> = items.iter().map(|item| item_text(item, attribute.as_deref())).collect();
        let picked = nearest(query, &texts, k).map_err(fail)?;
        Ok::<_, Error>(minijinja::Value::from(picked.into_iter().map(|index| items[index].clone()).collect::<Vec<_>>()))
    });
    env.add_filter("cluster", move |text: &str, items: Vec<minijinja::Value>, k: usize, attribute: Option<String>| {
        let texts: Vec<String> = items.iter().map(|item| item_text(item, attribute.as_deref())).collect();
        let Some(position) = texts.iter().position(|item| item == text) else {
            return Err(fail(format!("cluster: {text:?} is not the text of any of the {} items", items.len())));
        };
        let assignment = clusters(&texts, k).map_err(fail)?;
        let group = items.iter().zip(&assignment).filter(|(_, cluster)| **cluster == assignment[position]).map(|(item, _)| item.clone());
        Ok::<_, Error>(minijinja::Value::from(group.collect::<Vec<_>>()))
    });
}

/// An item's text: the attribute named, or the item itself.
fn item_text(item: &minijinja::Value, attribute: Option<&str>) -> String {
    let value = match attribute {
        Some(name) => item.get_attr(name).unwrap_or_default(),
        None => item.clone(),
    };
    value.as_str().map_or_else(|| value.to_string(), str::to_string)
}

#[cfg(test)]
mod kmeans_tests {
    #[test]
    fn kmeans_groups_by_direction_and_numbers_groups_by_first_member() {
        // Two directions (x and y), interleaved, with small perturbations; a third point far off.
        let vectors = vec![
            vec![0.0, 1.0, 0.0],
            vec![1.0, 0.1, 0.0],
            vec![0.1, 1.0, 0.0],
            vec![1.0, 0.0, 0.1],
            vec![0.0, 0.9, 0.1],
            vec![0.9, 0.0, 0.0],
        ];
        assert_eq!(super::kmeans(&vectors, 2), [0, 1, 0, 1, 0, 1]);
        // Farthest-first seeding finds the lone point; length does not matter, only direction.
        let mut with_outlier = vectors.clone();
        with_outlier.push(vec![0.0, 0.0, 5.0]);
        assert_eq!(super::kmeans(&with_outlier, 3), [0, 1, 0, 1, 0, 1, 2]);
        // k above n gives one cluster per distinct point at most; k = 1 one cluster.
        assert_eq!(super::kmeans(&vectors[..2], 5), [0, 1]);
        assert_eq!(super::kmeans(&vectors, 1), [0; 6]);
        assert!(super::kmeans(&[], 3).is_empty());
    }
}

#[cfg(all(test, feature = "embed"))]
mod tests {
    #[test]
    fn similar_texts_are_closer_than_unrelated_ones() {
        // all-MiniLM-L6-v2 is installed by scripts/setup.sh.
        let near = super::max_cosine("Returns the weather forecast for a city", &["Gets the weather forecast of a city".into()]).unwrap();
        let far = super::max_cosine("Returns the weather forecast for a city", &["Lists the books of a library".into()]).unwrap();
        assert!(near > 0.8 && far < near, "{near} {far}");
        assert_eq!(super::max_cosine("x", &[]).unwrap(), 0.0);
    }

    #[test]
    fn clusters_depend_on_the_set_of_texts_not_their_order() {
        let texts: Vec<String> = [
            "keep the crops alive through the drought",
            "fix the last bugs before the app launch",
            "teach the children to save water",
            "announce the app launch to many people",
            "repair the water pump before it fails",
            "keep the app launch on budget",
        ]
        .map(String::from)
        .to_vec();
        let forward = super::clusters(&texts, 2).unwrap();
        let reversed: Vec<String> = texts.iter().rev().cloned().collect();
        let mut backward = super::clusters(&reversed, 2).unwrap();
        backward.reverse();
        // The same partition: two texts share a group in one order exactly when they do in the other.
        for a in 0..texts.len() {
            for b in 0..texts.len() {
                assert_eq!(forward[a] == forward[b], backward[a] == backward[b], "{} / {}", texts[a], texts[b]);
            }
        }
        assert_eq!(forward, [0, 1, 0, 1, 0, 1]);
    }
}
