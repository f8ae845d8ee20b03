//! A path to the value being visited, kept as borrowed segments and rendered only when an
//! error is reported (so valid objects cost no string building).

#[derive(Clone, Copy)]
pub(crate) enum Seg<'a> {
    /// A declared property (`.name` in both styles).
    Prop(&'a str),
    /// A key under additionalProperties (`.key` for kube-openapi, `[key]` for field paths).
    Key(&'a str),
    Index(usize),
}

#[derive(Default)]
pub(crate) struct Path<'a> {
    segs: Vec<Seg<'a>>,
}

impl<'a> Path<'a> {
    pub(crate) fn push(&mut self, s: Seg<'a>) {
        self.segs.push(s);
    }

    pub(crate) fn pop(&mut self) {
        self.segs.pop();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// kube-openapi's path (`spec.labels.app`, `spec.list[0].name`).
    pub(crate) fn openapi(&self) -> String {
        let mut s = String::new();
        for seg in &self.segs {
            match seg {
                Seg::Prop(k) | Seg::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Seg::Index(i) => {
                    s.push('[');
                    s.push_str(&i.to_string());
                    s.push(']');
                }
            }
        }
        s
    }

    /// `field.Path` rendering (`spec.labels[app]`, `spec.list[0].name`) under `prefix`.
    pub(crate) fn field(&self, prefix: &str) -> String {
        let mut s = String::from(prefix);
        for seg in &self.segs {
            match seg {
                Seg::Prop(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Seg::Key(k) => {
                    s.push('[');
                    s.push_str(k);
                    s.push(']');
                }
                Seg::Index(i) => {
                    s.push('[');
                    s.push_str(&i.to_string());
                    s.push(']');
                }
            }
        }
        s
    }
}
