//! The catalog: every checklist and methodology of a directory, loaded, cross-checked and
//! indexed. It is immutable once loaded; the service loads it at start and shares it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::{LoadError, LoadErrors};
use super::loader::load_checklists;
use super::methodology::{Methodology, MethodologyKind, load_methodologies};
use super::model::{Checklist, Item, Rule};
use super::source::Source;

/// The text of one catalog file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogFile {
    /// Where it was read from; errors name this path.
    pub path: PathBuf,
    /// Its content.
    pub text: String,
    /// A methodology (from `methodology/`) rather than a checklist.
    pub methodology: bool,
}

/// Every loaded checklist and methodology.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) checklists: Vec<Checklist>,
    pub(crate) methodologies: Vec<Methodology>,
    /// Answer slot → (checklist, item) positions.
    pub(crate) slots: Vec<(u32, u32)>,
    /// Rule index → (checklist, rule) positions.
    pub(crate) rules: Vec<(u32, u32)>,
    pub(crate) item_index: HashMap<String, u32>,
    pub(crate) rule_index: HashMap<String, u32>,
    default_methodology: usize,
}

impl Catalog {
    /// Loads every `*.yaml` checklist in `dir` and every methodology in `dir/methodology`.
    ///
    /// # Errors
    /// Returns all problems found (unreadable files, YAML errors, unknown keys, bad
    /// expressions, unknown references, duplicate ids, ...), each with file, line and column.
    pub fn load_dir(dir: &Path) -> Result<Catalog, LoadErrors> {
        let mut errors = LoadErrors::default();
        let checklist_sources = read_sources(dir, &mut errors);
        let methodology_sources = read_sources(&dir.join("methodology"), &mut errors);
        Self::build(dir, &checklist_sources, &methodology_sources, errors)
    }

    /// Reads the files [`Catalog::load_dir`] would load, without interpreting them, so
    /// that exactly these texts can be published and later rebuilt with
    /// [`Catalog::from_files`].
    ///
    /// # Errors
    /// Unreadable directories or files, files that are not UTF-8.
    pub fn read_files(dir: &Path) -> Result<Vec<CatalogFile>, LoadErrors> {
        let mut errors = LoadErrors::default();
        let checklists = read_sources(dir, &mut errors);
        let methodologies = read_sources(&dir.join("methodology"), &mut errors);
        if !errors.errors.is_empty() {
            return Err(errors);
        }
        let files = checklists
            .into_iter()
            .map(|s| (s, false))
            .chain(methodologies.into_iter().map(|s| (s, true)))
            .map(|(s, methodology)| CatalogFile {
                path: s.path,
                text: s.text,
                methodology,
            })
            .collect();
        Ok(files)
    }

    /// Builds a catalog from file texts, e.g. a release stored in the database.
    ///
    /// # Errors
    /// As [`Catalog::load_dir`], with positions relative to each file's `path`.
    pub fn from_files(files: &[CatalogFile]) -> Result<Catalog, LoadErrors> {
        let mut checklist_sources = Vec::new();
        let mut methodology_sources = Vec::new();
        for file in files {
            let source = Source::new(file.path.clone(), file.text.clone());
            if file.methodology {
                methodology_sources.push(source);
            } else {
                checklist_sources.push(source);
            }
        }
        checklist_sources.sort_by(|a, b| a.path.cmp(&b.path));
        methodology_sources.sort_by(|a, b| a.path.cmp(&b.path));
        Self::build(
            Path::new("."),
            &checklist_sources,
            &methodology_sources,
            LoadErrors::default(),
        )
    }

    fn build(
        dir: &Path,
        checklist_sources: &[Source],
        methodology_sources: &[Source],
        mut errors: LoadErrors,
    ) -> Result<Catalog, LoadErrors> {
        let (checklists, table) = load_checklists(checklist_sources, &mut errors);

        let mut slots = Vec::new();
        let mut rules = Vec::new();
        let mut item_index = HashMap::new();
        let mut rule_index = HashMap::new();
        for (ci, c) in checklists.iter().enumerate() {
            for (ii, item) in c.items.iter().enumerate() {
                debug_assert_eq!(item.slot as usize, slots.len());
                item_index.insert(item.key.clone(), item.slot);
                slots.push((ci as u32, ii as u32));
            }
            for (ri, rule) in c.rules.iter().enumerate() {
                rule_index.insert(rule.key.clone(), rules.len() as u32);
                rules.push((ci as u32, ri as u32));
            }
        }
        let methodologies =
            load_methodologies(methodology_sources, &table, &rule_index, &mut errors);

        let defaults: Vec<usize> = methodologies
            .iter()
            .enumerate()
            .filter(|(_, m)| m.default)
            .map(|(i, _)| i)
            .collect();
        let default_methodology = match defaults.as_slice() {
            [one] => Some(*one),
            [] => {
                if errors.errors.is_empty() {
                    errors.push(missing(dir, "no default methodology: mark exactly one scoring methodology with `default: true`"));
                }
                None
            }
            [_, second, ..] => {
                let m = &methodologies[*second];
                errors.push(LoadError {
                    file: m.file.clone(),
                    line: 1,
                    column: 1,
                    message: format!("methodology `{}` is a second `default: true`", m.id),
                });
                None
            }
        };
        if checklists.is_empty() && errors.errors.is_empty() {
            errors.push(missing(dir, "no checklist files (*.yaml) found"));
        }
        errors.sort();
        match default_methodology {
            Some(d) if errors.errors.is_empty() => Ok(Catalog {
                checklists,
                methodologies,
                slots,
                rules,
                item_index,
                rule_index,
                default_methodology: d,
            }),
            _ => Err(errors),
        }
    }

    /// All checklists, ordered by file name.
    #[must_use]
    pub fn checklists(&self) -> &[Checklist] {
        &self.checklists
    }

    /// The checklist with this id.
    #[must_use]
    pub fn checklist(&self, id: &str) -> Option<&Checklist> {
        self.checklists.iter().find(|c| c.id == id)
    }

    /// All methodologies (scoring and passport), ordered by file name.
    #[must_use]
    pub fn methodologies(&self) -> &[Methodology] {
        &self.methodologies
    }

    /// The methodology with this id.
    #[must_use]
    pub fn methodology(&self, id: &str) -> Option<&Methodology> {
        self.methodologies.iter().find(|m| m.id == id)
    }

    /// The methodology used when none is requested.
    #[must_use]
    pub fn default_methodology(&self) -> &Methodology {
        &self.methodologies[self.default_methodology]
    }

    /// The item with key `checklist.item`.
    #[must_use]
    pub fn item(&self, key: &str) -> Option<&Item> {
        self.item_index.get(key).and_then(|s| self.item_at(*s))
    }

    /// The rule with key `checklist.rule`.
    #[must_use]
    pub fn rule(&self, key: &str) -> Option<&Rule> {
        self.rule_index.get(key).and_then(|r| self.rule_at(*r))
    }

    /// Number of answerable items over all checklists.
    #[must_use]
    pub fn item_count(&self) -> usize {
        self.slots.len()
    }

    /// Number of rules over all checklists.
    #[must_use]
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub(crate) fn item_at(&self, slot: u32) -> Option<&Item> {
        let (c, i) = *self.slots.get(slot as usize)?;
        self.checklists.get(c as usize)?.items.get(i as usize)
    }

    pub(crate) fn rule_at(&self, index: u32) -> Option<&Rule> {
        let (c, r) = *self.rules.get(index as usize)?;
        self.checklists.get(c as usize)?.rules.get(r as usize)
    }

    pub(crate) fn is_scoring(m: &Methodology) -> bool {
        !matches!(m.kind, MethodologyKind::Passport(_))
    }
}

fn missing(dir: &Path, message: &str) -> LoadError {
    LoadError {
        file: dir.to_path_buf(),
        line: 1,
        column: 1,
        message: message.to_owned(),
    }
}

/// Reads every `*.yaml` / `*.yml` file directly in `dir`, sorted by name.
fn read_sources(dir: &Path, errors: &mut LoadErrors) -> Vec<Source> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(missing(dir, &format!("cannot read directory: {e}")));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Some(Source::new(path, text)),
                Err(_) => {
                    errors.push(missing(&path, "file is not valid UTF-8"));
                    None
                }
            },
            Err(e) => {
                errors.push(missing(&path, &format!("cannot read file: {e}")));
                None
            }
        })
        .collect()
}
