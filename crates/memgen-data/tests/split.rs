//! Disjoint nested splits: disjointness, nesting, group respect and clear errors, over many seeds.

use memgen_data::split::{NestedSplit, SplitFile};
use memgen_data::Error;
use std::collections::{HashMap, HashSet};

fn groups(count: usize, per_group: &dyn Fn(usize) -> usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut g = 0;
    while out.len() < count {
        for _ in 0..per_group(g) {
            out.push(format!("g{g}"));
        }
        g += 1;
    }
    out.truncate(count);
    out
}

fn check(split: &NestedSplit, count: usize, keys: Option<&[String]>) {
    let a: HashSet<usize> = split.order_a.iter().copied().collect();
    let b: HashSet<usize> = split.order_b.iter().copied().collect();
    assert_eq!(a.len(), split.order_a.len(), "side A repeats an index");
    assert_eq!(b.len(), split.order_b.len(), "side B repeats an index");
    assert!(a.is_disjoint(&b), "sides overlap");
    assert_eq!(a.len() + b.len(), count, "every image is on one side");
    assert!(a.iter().chain(&b).all(|&i| i < count));
    if let Some(keys) = keys {
        let mut side: HashMap<&str, bool> = HashMap::new();
        for (list, on_a) in [(&split.order_a, true), (&split.order_b, false)] {
            for &i in list {
                let prev = side.insert(keys[i].as_str(), on_a);
                assert!(prev.is_none() || prev == Some(on_a), "group {} is on both sides", keys[i]);
            }
        }
    }
    // Nesting: for every n, S(n) is a prefix, so S(n) ⊂ S(m) for n < m, and the sizes are exact.
    let max = split.max_n();
    let mut ns: Vec<usize> = [0, 1, 2, max / 3, max / 2, max].into_iter().filter(|&n| n <= max).collect();
    ns.sort();
    for w in ns.windows(2) {
        let (a1, b1) = split.subsets(w[0]).unwrap();
        let (a2, b2) = split.subsets(w[1]).unwrap();
        assert_eq!((a1.len(), b1.len()), (w[0], w[0]));
        let (sa, sb): (HashSet<_>, HashSet<_>) = (a2.iter().collect(), b2.iter().collect());
        assert!(a1.iter().all(|i| sa.contains(i)) && b1.iter().all(|i| sb.contains(i)), "not nested");
    }
}

#[test]
fn ungrouped_splits_are_disjoint_nested_and_balanced() {
    for seed in 0..200 {
        let count = 1 + (seed as usize * 37) % 500;
        let s = NestedSplit::new(count, None, seed);
        check(&s, count, None);
        assert_eq!(s.max_n(), count / 2, "ungrouped sides differ by at most one");
    }
}

#[test]
fn grouped_splits_keep_groups_on_one_side() {
    for seed in 0..200 {
        let count = 50 + (seed as usize * 53) % 400;
        let keys = groups(count, &|g| 1 + (g * 7 + seed as usize) % 12);
        let s = NestedSplit::new(count, Some(&keys), seed);
        check(&s, count, Some(&keys));
        let largest = 12;
        assert!(s.order_a.len().abs_diff(s.order_b.len()) <= largest, "greedy balance is within one group");
    }
}

#[test]
fn olivetti_shape_forty_people_of_ten() {
    let keys = groups(400, &|_| 10);
    for seed in 0..50 {
        let s = NestedSplit::new(400, Some(&keys), seed);
        check(&s, 400, Some(&keys));
        assert_eq!((s.groups_a, s.groups_b), (20, 20));
        assert_eq!(s.max_n(), 200);
    }
}

#[test]
fn same_seed_same_split_and_seeds_differ() {
    let a = NestedSplit::new(1000, None, 5);
    assert_eq!(a, NestedSplit::new(1000, None, 5));
    assert_ne!(a.order_a, NestedSplit::new(1000, None, 6).order_a);
}

#[test]
fn asking_too_much_says_how_many_are_available() {
    let keys = groups(400, &|_| 10);
    let s = NestedSplit::new(400, Some(&keys), 1);
    let err = s.subsets(201).unwrap_err();
    assert!(matches!(err, Error::NotEnough(_)));
    let msg = err.to_string();
    assert!(msg.contains("N = 201") && msg.contains("at most N = 200") && msg.contains("40 groups"), "{msg}");
    // One huge group: everything lands on one side, nothing is available for B.
    let one = vec!["x".to_string(); 30];
    let s = NestedSplit::new(30, Some(&one), 0);
    assert_eq!(s.max_n(), 0);
    assert!(s.subsets(1).unwrap_err().to_string().contains("at most N = 0"));
}

#[test]
fn split_file_records_exact_prefixes() {
    let s = NestedSplit::new(100, None, 3);
    let f = SplitFile::build(&s, &[1, 10, 50], "d".into(), "sha256:x".into()).unwrap();
    assert_eq!(f.splits[1].a, s.order_a[..10].to_vec());
    assert_eq!(f.splits[2].b, s.order_b[..50].to_vec());
    assert!(SplitFile::build(&s, &[51], "d".into(), "h".into()).is_err());
    let json = serde_json::to_string(&f).unwrap();
    assert_eq!(serde_json::from_str::<SplitFile>(&json).unwrap(), f);
}
