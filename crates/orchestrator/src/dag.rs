//! The dependency graph between a release's services.
//!
//! Services are released in topological groups: group 0 has no dependencies, group
//! `k` depends only on groups before it. A group's services progress in parallel.

use crate::plan::Service;

/// The services' indices grouped by depth, or the members of a cycle (first name
/// repeated at the end: `a -> c -> b -> a`).
pub fn groups(services: &[Service]) -> Result<Vec<Vec<usize>>, Vec<String>> {
    let index = |name: &str| services.iter().position(|s| s.name == name);
    let deps: Vec<Vec<usize>> = services
        .iter()
        .map(|s| s.depends_on.iter().filter_map(|d| index(d)).collect())
        .collect();

    // Depth-first search with colours; the grey path is the cycle when an edge
    // returns into it.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; services.len()];
    let mut depth = vec![0usize; services.len()];
    let mut path = Vec::new();

    fn visit(
        node: usize,
        deps: &[Vec<usize>],
        colour: &mut [Colour],
        depth: &mut [usize],
        path: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        colour[node] = Colour::Grey;
        path.push(node);
        let mut d = 0;
        for &dep in &deps[node] {
            match colour[dep] {
                Colour::Grey => {
                    let start = path.iter().position(|&n| n == dep).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(dep);
                    return Err(cycle);
                }
                Colour::White => visit(dep, deps, colour, depth, path)?,
                Colour::Black => {}
            }
            d = d.max(depth[dep] + 1);
        }
        depth[node] = d;
        colour[node] = Colour::Black;
        path.pop();
        Ok(())
    }

    for node in 0..services.len() {
        if colour[node] == Colour::White {
            visit(node, &deps, &mut colour, &mut depth, &mut path).map_err(|cycle| {
                cycle
                    .into_iter()
                    .map(|n| services[n].name.clone())
                    .collect::<Vec<_>>()
            })?;
        }
    }
    let groups = depth.iter().copied().max().map_or(0, |m| m + 1);
    let mut out = vec![Vec::new(); groups];
    for (node, &d) in depth.iter().enumerate() {
        out[d].push(node);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Canary;

    fn services(edges: &[(&str, &[&str])]) -> Vec<Service> {
        edges
            .iter()
            .map(|(name, deps)| Service {
                name: (*name).into(),
                depends_on: deps.iter().map(|d| (*d).into()).collect(),
                canary: Canary::None,
                flags: vec![],
                health: vec![],
                strategy: None,
                steps: vec![],
                region: None,
            })
            .collect()
    }

    #[test]
    fn groups_by_depth() {
        let s = services(&[
            ("web", &["payments", "auth"]),
            ("auth", &[]),
            ("payments", &["auth"]),
            ("search", &[]),
        ]);
        assert_eq!(groups(&s), Ok(vec![vec![1, 3], vec![2], vec![0]]));
    }

    #[test]
    fn names_a_cycle() {
        let s = services(&[("a", &["b"]), ("b", &["a"])]);
        assert_eq!(groups(&s), Err(vec!["a".into(), "b".into(), "a".into()]));
    }
}
