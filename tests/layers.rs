//! The house has no cycles: within every module, no two of its children
//! use each other, directly or around a loop. Data flows one way (sources
//! → engine → response → store / alerts, with the server and the CLI on
//! top), so a piece both sides need lives in a layer below both.
//!
//! References are read from the source text: `crate::a::b`, `super::x`
//! (also inside `use super::{x, y::z}`), resolved to module paths. A
//! reference from module F to module T adds the edge between the two
//! children of their deepest common ancestor that lead to F and to T.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// (crate, module path) of a source file: `lib` or `bin`, and e.g.
/// `["server", "console", "pages"]`.
fn module_of(src: &Path, file: &Path) -> (String, Vec<String>) {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs").to_string();
    if !matches!(stem.as_str(), "mod" | "lib" | "main") {
        parts.push(stem);
    }
    let krate = if parts.first().map(String::as_str) == Some("cli") || last == "main.rs" {
        "bin"
    } else {
        "lib"
    };
    (krate.to_string(), parts)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The paths a file names after `crate::` and `super::` chains.
fn references(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':');
        let starts = boundary && (rest.starts_with("crate::") || rest.starts_with("super::"));
        if !starts {
            i += 1;
            continue;
        }
        let (mut base, mut j) = if rest.starts_with("crate::") {
            (Vec::new(), i + "crate::".len())
        } else {
            let mut base = module.to_vec();
            base.pop();
            (base, i + "super::".len())
        };
        while code[j..].starts_with("super::") {
            base.pop();
            j += "super::".len();
        }
        let tail = &code[j..];
        if let Some(group) = tail.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && name != "self" {
                    let mut path = base.clone();
                    path.push(name);
                    out.push(path);
                }
            }
        } else {
            let name: String = tail.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                let mut path = base.clone();
                path.push(name);
                out.push(path);
            }
        }
        i = j;
    }
    out
}

/// Every cycle among the children of each module, as a readable loop.
fn cycles() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let modules: BTreeSet<(String, Vec<String>)> = all.iter().map(|f| module_of(&src, f)).collect();
    // (crate, parent) -> child -> children it uses
    let mut graphs: BTreeMap<(String, Vec<String>), BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &all {
        let (krate, module) = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        for target in references(&text, &module) {
            // The longest prefix of the reference that is a module.
            let Some(target) = (1..=target.len())
                .rev()
                .map(|n| target[..n].to_vec())
                .find(|t| modules.contains(&(krate.clone(), t.clone())))
            else {
                continue;
            };
            let common = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common < module.len() && common < target.len() {
                graphs
                    .entry((krate.clone(), module[..common].to_vec()))
                    .or_default()
                    .entry(module[common].clone())
                    .or_default()
                    .insert(target[common].clone());
            }
        }
    }
    let mut found = Vec::new();
    for ((krate, parent), graph) in &graphs {
        for start in graph.keys() {
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            while let Some((at, path)) = stack.pop() {
                for next in graph.get(&at).into_iter().flatten() {
                    if next == start {
                        let lowest = path.iter().min().unwrap();
                        if lowest == start {
                            found.push(format!("{krate}::{}: {} -> {start}", parent.join("::"), path.join(" -> ")));
                        }
                    } else if !path.contains(next) {
                        let mut longer = path.clone();
                        longer.push(next.clone());
                        stack.push((next.clone(), longer));
                    }
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn no_module_and_no_two_files_use_each_other_around_a_loop() {
    let found = cycles();
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_reader_sees_the_references_it_must() {
    let module = vec!["cli".to_string(), "git".to_string()];
    let refs = references("use super::{output::Reported, scanning};\nuse crate::engine::Engine;", &module);
    assert!(refs.contains(&vec!["cli".to_string(), "output".to_string()]), "{refs:?}");
    assert!(refs.contains(&vec!["cli".to_string(), "scanning".to_string()]), "{refs:?}");
    assert!(refs.contains(&vec!["engine".to_string()]), "{refs:?}");
}
