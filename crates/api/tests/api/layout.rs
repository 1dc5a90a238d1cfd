//! The source tree as its docs describe it: every crate's `lib.rs` lists
//! exactly the modules it declares, which are exactly the files, and no
//! folder of `api` or `db` imports a folder that imports it back (one that
//! did could not be read, or moved out, on its own).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The crates whose `src/lib.rs` is checked.
fn crates() -> Vec<PathBuf> {
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("src/lib.rs").is_file())
        .collect();
    crates.sort();
    crates
}

/// The modules a file declares (`mod x;`, `pub mod x;`, `pub(crate) mod x;`).
fn declared(source: &str) -> BTreeSet<String> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let rest = ["pub mod ", "pub(crate) mod ", "mod "].iter().find_map(|p| line.strip_prefix(p))?;
            rest.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

/// The modules `src` holds as files: `x.rs` (not `lib.rs`/`main.rs`) and
/// folders with a `mod.rs`.
fn files(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_stem()?.to_str()?.to_owned();
            match path.extension().and_then(|e| e.to_str()) {
                Some("rs") if name != "lib" && name != "main" => Some(name),
                None if path.join("mod.rs").is_file() => Some(name),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn every_lib_rs_lists_the_modules_that_are_its_files() {
    let mut problems = Vec::new();
    for krate in crates() {
        let lib = std::fs::read_to_string(krate.join("src/lib.rs")).unwrap();
        let docs: String = lib.lines().filter_map(|l| l.strip_prefix("//!")).collect::<Vec<_>>().join("\n");
        let declared = declared(&lib);
        let name = krate.file_name().unwrap().to_string_lossy().into_owned();
        for file in files(&krate.join("src")).difference(&declared) {
            problems.push(format!("{name}: src/{file} is not declared in lib.rs"));
        }
        for module in &declared {
            if !docs.contains(&format!("`{module}`")) {
                problems.push(format!("{name}: lib.rs's `//!` list does not name `{module}`"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// The top-level modules of a crate that each file under `src` imports
/// through `crate::x`, by the top-level module the file belongs to.
fn imports_between_top_level_modules(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = files(src);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources(src) {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let from = first.trim_end_matches(".rs").to_owned();
        if !modules.contains(&from) {
            continue;
        }
        // Code only: a doc link to another module is not an import.
        let text: String = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        for (i, _) in text.match_indices("crate::") {
            // `crate::x` itself, not `mycrate::x`.
            if text[..i].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &text[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if name != from && modules.contains(&name) {
                edges.entry(from.clone()).or_default().insert(name);
            }
        }
    }
    edges
}

/// A path from `to` back to `from`, if any.
fn path_back(edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![to.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap().clone();
        if last == from {
            return Some(path);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for next in edges.get(&last).into_iter().flatten() {
            let mut longer = path.clone();
            longer.push(next.clone());
            stack.push(longer);
        }
    }
    None
}

#[test]
fn no_top_level_module_of_api_or_db_imports_one_that_imports_it_back() {
    let mut cycles = Vec::new();
    for krate in ["api", "db"] {
        let edges = imports_between_top_level_modules(&root().join("crates").join(krate).join("src"));
        for (from, targets) in &edges {
            for to in targets {
                if let Some(back) = path_back(&edges, from, to) {
                    cycles.push(format!("{krate}: {from} -> {}", back.join(" -> ")));
                }
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]
    .into();

    assert_eq!(path_back(&edges, "a", "b"), Some(vec!["b".to_owned(), "c".to_owned(), "a".to_owned()]));
    assert_eq!(path_back(&edges, "c", "d"), None);
}
