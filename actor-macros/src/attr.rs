//! Options given to `#[agent(..)]`.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;

use crate::symbol::{OPT_CRATE, OPT_MAILBOX, OPT_REMOTE};

/// Where `#[agent]` was placed, which decides the options it accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Struct,
    Impl,
}

#[derive(Default)]
pub(crate) struct AgentArgs {
    pub(crate) mailbox: Option<(usize, Span)>,
    pub(crate) krate: Option<syn::Path>,
    pub(crate) remote: bool,
}

impl AgentArgs {
    pub(crate) fn parse(tokens: TokenStream, place: Place) -> syn::Result<Self> {
        let mut args = AgentArgs::default();
        let allowed: &[&str] = match place {
            Place::Struct => &[OPT_MAILBOX, OPT_CRATE],
            Place::Impl => &[OPT_REMOTE, OPT_CRATE],
        };
        let parser = syn::meta::parser(|meta| {
            let key = meta.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
            if !allowed.contains(&key.as_str()) {
                let where_ = match place {
                    Place::Struct => "on a struct",
                    Place::Impl => "on an impl block",
                };
                let mut msg = format!(
                    "unknown `#[agent]` option `{}` {where_}; expected one of: {}",
                    path_text(&meta.path),
                    allowed.join(", ")
                );
                if place == Place::Impl && key == OPT_MAILBOX {
                    msg.push_str(" (put `mailbox = N` in `#[agent(..)]` on the struct)");
                }
                if place == Place::Struct && key == OPT_REMOTE {
                    msg.push_str(" (put `remote` in `#[agent(..)]` on the impl block)");
                }
                return Err(meta.error(msg));
            }
            match key.as_str() {
                OPT_MAILBOX => {
                    let lit: syn::LitInt = meta.value()?.parse()?;
                    let n: usize = lit.base10_parse()?;
                    if n == 0 {
                        return Err(syn::Error::new(lit.span(), "`mailbox` must be at least 1"));
                    }
                    args.mailbox = Some((n, lit.span()));
                }
                OPT_CRATE => {
                    let lit: syn::LitStr = meta.value()?.parse()?;
                    args.krate = Some(lit.parse()?);
                }
                OPT_REMOTE => args.remote = true,
                _ => {}
            }
            Ok(())
        });
        parser.parse2(tokens)?;
        Ok(args)
    }

    pub(crate) fn crate_path(&self) -> syn::Path {
        self.krate.clone().unwrap_or_else(|| syn::parse_quote!(::troupe))
    }
}

fn path_text(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}
