//! Entry logic of `#[agent]`: decide what it was put on, then model and generate.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::spanned::Spanned;

use crate::attr::{AgentArgs, Place};
use crate::expand;
use crate::model::AgentImpl;
use crate::symbol::AGENT;

/// Expands `#[agent(..)]` on a struct or an impl block.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(s)) => expand_struct(attr, s),
        Ok(syn::Item::Impl(i)) => expand_impl(attr, i),
        Ok(other) => with_error(
            other.to_token_stream(),
            syn::Error::new(
                other.span(),
                "`#[agent]` goes on a struct (for options) or on the impl block that holds its `#[handle]` methods",
            ),
        ),
        Err(e) => with_error(item, e),
    }
}

fn expand_struct(attr: TokenStream, item: syn::ItemStruct) -> TokenStream {
    let args = match AgentArgs::parse(attr, Place::Struct) {
        Ok(a) => a,
        Err(e) => return with_error(item.to_token_stream(), e),
    };
    let krate = args.crate_path();
    let name = &item.ident;
    let (impl_g, ty_g, where_c) = item.generics.split_for_impl();
    let options = match args.mailbox {
        Some((n, _)) => quote!(#krate::Options::with_mailbox(#n)),
        None => quote!(#krate::Options::default()),
    };
    quote! {
        #item

        #[automatically_derived]
        impl #impl_g #krate::__private::AgentOptions for #name #ty_g #where_c {
            fn agent_options() -> #krate::Options {
                #options
            }
        }
    }
}

fn expand_impl(attr: TokenStream, item: syn::ItemImpl) -> TokenStream {
    let args = AgentArgs::parse(attr, Place::Impl);
    let (model, cleaned, err) = AgentImpl::parse(item);
    // A handler's policy guards remote callers: it needs `remote`.
    let err = match (&args, &model) {
        (Ok(args), Some(model)) if !args.remote => model
            .handlers
            .iter()
            .filter_map(|h| h.policy.as_ref())
            .map(|p| {
                syn::Error::new(
                    p.span(),
                    "a handler policy guards calls from other nodes: add `remote` to `#[agent(..)]` on the impl block",
                )
            })
            .fold(err, |acc, e| match acc {
                Some(mut acc) => {
                    acc.combine(e);
                    Some(acc)
                }
                None => Some(e),
            }),
        _ => err,
    };
    match (args, model, err) {
        (Ok(args), Some(model), None) => expand::generate(&model, &args),
        (Err(e1), _, Some(mut e2)) => {
            e2.combine(e1);
            with_error(cleaned.to_token_stream(), e2)
        }
        (Err(e), _, None) | (_, _, Some(e)) => with_error(cleaned.to_token_stream(), e),
        (Ok(_), None, None) => cleaned.to_token_stream(),
    }
}

/// `#[handle]`, `#[on_start]` or `#[on_stop]` reached on its own: it was not inside an
/// `#[agent]` impl block (which removes them).
pub(crate) fn misplaced(what: &str, _attr: TokenStream, item: TokenStream) -> TokenStream {
    let span = syn::parse2::<syn::ImplItemFn>(item.clone())
        .map(|f| f.sig.ident.span())
        .unwrap_or_else(|_| proc_macro2::Span::call_site());
    let err = syn::Error::new(
        span,
        format!(
            "`#[{what}]` only works on methods of an impl block marked `#[{AGENT}]`; add `#[{AGENT}]` above the `impl`"
        ),
    );
    with_error(item, err)
}

/// Keeps the user's item (so the IDE still sees it) and adds the error.
fn with_error(item: TokenStream, err: syn::Error) -> TokenStream {
    let err = err.to_compile_error();
    quote!(#item #err)
}
