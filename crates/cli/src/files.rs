//! Flags as files: one YAML file per flag (`DIR/flags/KEY.yaml`) and per segment
//! (`DIR/segments/KEY.yaml`), the model as the admin API writes it without the
//! server-kept `version`. [`read`] checks every file on its own (YAML, schema, key
//! against the file name, core's validation) and reports every problem with its file
//! and field path; [`write`] is `export`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use switchyard_core::{Flag, Segment, ValidationErrors};

use crate::error::CliError;

/// The flags and segments of a directory, each with the file it came from.
#[derive(Debug, Default)]
pub struct Files {
    /// `(file, flag)`, by file name.
    pub flags: Vec<(PathBuf, Flag)>,
    /// `(file, segment)`, by file name.
    pub segments: Vec<(PathBuf, Segment)>,
}

/// What a file holds: a flag or a segment.
trait Kept: Serialize + DeserializeOwned {
    const DIR: &'static str;
    fn key(&self) -> &str;
    fn validate(&self) -> Result<(), ValidationErrors>;
}

impl Kept for Flag {
    const DIR: &'static str = "flags";
    fn key(&self) -> &str {
        self.key.as_str()
    }
    fn validate(&self) -> Result<(), ValidationErrors> {
        switchyard_core::validate_flag(self)
    }
}

impl Kept for Segment {
    const DIR: &'static str = "segments";
    fn key(&self) -> &str {
        self.key.as_str()
    }
    fn validate(&self) -> Result<(), ValidationErrors> {
        switchyard_core::validate_segment(self)
    }
}

/// Reads `dir`: every problem of every file at once.
pub fn read(dir: &Path) -> Result<Files, CliError> {
    if !dir.is_dir() {
        return Err(CliError::Io {
            path: dir.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such directory (run `switchyard export` to make one)",
            ),
        });
    }
    let mut problems = Vec::new();
    let files = Files {
        flags: read_all(dir, &mut problems)?,
        segments: read_all(dir, &mut problems)?,
    };
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(CliError::Files(problems))
    }
}

fn read_all<T: Kept>(
    dir: &Path,
    problems: &mut Vec<String>,
) -> Result<Vec<(PathBuf, T)>, CliError> {
    let mut items = Vec::new();
    for path in yaml_files(&dir.join(T::DIR))? {
        let shown = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| CliError::Io {
            path: path.clone(),
            source,
        })?;
        // serde_yaml_ng's errors name the field path and the line.
        let item: T = match serde_yaml_ng::from_str(&text) {
            Ok(item) => item,
            Err(e) => {
                problems.push(format!("{shown}: {e}"));
                continue;
            }
        };
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if item.key() != stem {
            problems.push(format!(
                "{shown}: key: `{}` does not match the file name (`{stem}`)",
                item.key()
            ));
        }
        if let Err(errors) = item.validate() {
            problems.extend(errors.errors().iter().map(|e| format!("{shown}: {e}")));
        }
        if items
            .iter()
            .any(|(_, other): &(PathBuf, T)| other.key() == item.key())
        {
            problems.push(format!(
                "{shown}: key `{}` is in another file too",
                item.key()
            ));
        }
        items.push((path, item));
    }
    Ok(items)
}

/// One flag file (`schedule create --flag-file`): checked like a file of [`read`],
/// every problem named with the file and field path.
pub fn read_flag(path: &Path) -> Result<Flag, CliError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
        path: path.to_owned(),
        source,
    })?;
    let flag: Flag = serde_yaml_ng::from_str(&text)
        .map_err(|e| CliError::Files(vec![format!("{shown}: {e}")]))?;
    flag.validate().map_err(|errors| {
        CliError::Files(
            errors
                .errors()
                .iter()
                .map(|e| format!("{shown}: {e}"))
                .collect(),
        )
    })?;
    Ok(flag)
}

/// The `.yaml` and `.yml` files directly in `dir` (none when it does not exist), by
/// name.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CliError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The YAML of a flag or segment as kept in a file: the model without `version`.
pub fn to_yaml(item: &impl Serialize) -> String {
    let mut value = serde_json::to_value(item).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("version");
    }
    serde_yaml_ng::to_string(&value).unwrap_or_default()
}

/// Writes every flag and segment into `dir`, and removes the files of flags and
/// segments the environment no longer has. Returns `(written, removed)`.
pub fn write(dir: &Path, flags: &[Flag], segments: &[Segment]) -> Result<(usize, usize), CliError> {
    let (a, b) = write_all(dir, flags)?;
    let (c, d) = write_all(dir, segments)?;
    Ok((a + c, b + d))
}

fn write_all<T: Kept>(dir: &Path, items: &[T]) -> Result<(usize, usize), CliError> {
    let sub = dir.join(T::DIR);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CliError::Io { path, source }
    };
    std::fs::create_dir_all(&sub).map_err(io(&sub))?;
    let mut written = Vec::new();
    for item in items {
        let path = sub.join(format!("{}.yaml", item.key()));
        std::fs::write(&path, to_yaml(item)).map_err(io(&path))?;
        written.push(path);
    }
    let mut removed = 0;
    for stale in yaml_files(&sub)?
        .into_iter()
        .filter(|p| !written.contains(p))
    {
        std::fs::remove_file(&stale).map_err(io(&stale))?;
        removed += 1;
    }
    Ok((written.len(), removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_names_its_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let flags = dir.path().join("flags");
        std::fs::create_dir_all(&flags).unwrap();
        let good = "key: good\nkind: boolean\nvariants: { on: true, off: false }\noff_variant: 'off'\ndefault: { variant: 'off' }\n";
        std::fs::write(flags.join("good.yaml"), good).unwrap();
        std::fs::write(flags.join("named.yaml"), good).unwrap();
        std::fs::write(
            flags.join("broken.yaml"),
            good.replace("key: good", "key: broken")
                .replace("variant: 'off'", "variant: maybe"),
        )
        .unwrap();
        std::fs::write(
            flags.join("typo.yaml"),
            "key: typo\nkind: boolean\nvariants: 7\n",
        )
        .unwrap();
        let Err(CliError::Files(problems)) = read(dir.path()) else {
            panic!("the files are invalid");
        };
        let expected = [
            "flags/broken.yaml: off_variant: unknown variant `maybe`",
            "flags/broken.yaml: default.variant: unknown variant `maybe`",
            "flags/named.yaml: key: `good` does not match the file name (`named`)",
            "flags/named.yaml: key `good` is in another file too",
            "flags/typo.yaml: variants: invalid type",
        ];
        for want in expected {
            assert!(
                problems.iter().any(|p| p.starts_with(want)),
                "no `{want}` in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), 5, "{problems:#?}");
    }
}
