//! Parse and validate: from the `impl` block to a typed model of the agent.

use std::collections::HashMap;

use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{FnArg, ImplItem, ImplItemFn, Pat, ReturnType, Type};

use crate::symbol::{CONTEXT, HANDLE, ON_DOWN, ON_START, ON_STOP, REPLY, RESERVED_HANDLER_NAMES};

/// Collects every error so the user sees them all at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.add(syn::Error::new(span, msg));
    }

    pub(crate) fn add(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(e) => e.combine(err),
            None => self.0 = Some(err),
        }
    }

    pub(crate) fn take(self) -> Option<syn::Error> {
        self.0
    }
}

/// One parameter of a handler or hook, in declaration order.
pub(crate) enum Param {
    /// A message argument (index into `Handler::args`).
    Arg(usize),
    /// The `&mut Context<Self>` parameter.
    Ctx,
    /// The `&StopReason` parameter of `#[on_stop]`.
    Reason,
    /// The `Down` parameter of `#[on_down]`.
    Down,
    /// The `Reply<T>` parameter of a handler that answers later.
    Reply,
}

pub(crate) struct Arg {
    pub(crate) name: syn::Ident,
    pub(crate) ty: Type,
}

pub(crate) struct Handler {
    pub(crate) method: syn::Ident,
    pub(crate) variant: syn::Ident,
    pub(crate) is_async: bool,
    pub(crate) args: Vec<Arg>,
    pub(crate) params: Vec<Param>,
    /// What a caller gets: the return type, or `T` of a `Reply<T>` parameter.
    pub(crate) ret: Type,
    /// True when the handler takes `Reply<T>` and answers through it.
    pub(crate) deferred: bool,
    /// `#[handle(policy = "...")]`: the access policy for remote callers (checked).
    pub(crate) policy: Option<syn::LitStr>,
    /// `#[handle(tool)]`: served as an MCP tool; the span of `tool`.
    pub(crate) tool: Option<Span>,
    pub(crate) docs: Vec<syn::Attribute>,
}

pub(crate) struct Hook {
    pub(crate) method: syn::Ident,
    pub(crate) is_async: bool,
    pub(crate) params: Vec<Param>,
}

pub(crate) struct AgentImpl {
    pub(crate) item: syn::ItemImpl,
    pub(crate) self_ty: Type,
    pub(crate) name: syn::Ident,
    pub(crate) handlers: Vec<Handler>,
    pub(crate) on_start: Option<Hook>,
    pub(crate) on_stop: Option<Hook>,
    pub(crate) on_down: Option<Hook>,
}

/// Which of our attributes a method carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Handle,
    OnStart,
    OnStop,
    OnDown,
}

impl Role {
    fn attr(self) -> &'static str {
        match self {
            Role::Handle => HANDLE,
            Role::OnStart => ON_START,
            Role::OnStop => ON_STOP,
            Role::OnDown => ON_DOWN,
        }
    }
}

/// `#[handle(policy = "...", tool)]`: the policy text, checked with the policy language's
/// own parser so that a mistake is a compile error pointing at the literal, and whether
/// the handler is served as an MCP tool.
fn parse_handle_args(attr: &syn::Attribute, errors: &mut Errors) -> (Option<syn::LitStr>, Option<Span>) {
    let mut policy = None;
    let mut tool = None;
    let parsed = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident(crate::symbol::TOOL) {
            if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                return Err(meta.error("`tool` takes no value: write `#[handle(tool)]`"));
            }
            tool = Some(meta.path.span());
            Ok(())
        } else if meta.path.is_ident(crate::symbol::POLICY) {
            let lit: syn::LitStr = meta.value()?.parse()?;
            if let Err(e) = actor_abac::Policy::parse(&lit.value()) {
                errors.push(lit.span(), format!("invalid policy {e}"));
            }
            policy = Some(lit);
            Ok(())
        } else {
            Err(meta.error("unknown `#[handle]` option; expected `policy = \"...\"` or `tool`"))
        }
    });
    if let Err(e) = parsed {
        errors.add(e);
    }
    (policy, tool)
}

fn role_of(attr: &syn::Attribute) -> Option<Role> {
    let last = attr.path().segments.last()?.ident.to_string();
    match last.as_str() {
        HANDLE => Some(Role::Handle),
        ON_START => Some(Role::OnStart),
        ON_STOP => Some(Role::OnStop),
        ON_DOWN => Some(Role::OnDown),
        _ => None,
    }
}

impl AgentImpl {
    /// Builds the model, strips our attributes from the methods, and reports every problem.
    /// On error it still returns the cleaned-up impl block so the expansion stays usable.
    pub(crate) fn parse(mut item: syn::ItemImpl) -> (Option<AgentImpl>, syn::ItemImpl, Option<syn::Error>) {
        let mut errors = Errors::default();

        if let Some((_, path, _)) = &item.trait_ {
            errors.push(
                path.span(),
                "`#[agent]` goes on the inherent impl block that holds the `#[handle]` methods, not on a trait impl",
            );
        }
        for lt in item.generics.lifetimes() {
            errors.push(
                lt.span(),
                "agents cannot borrow: remove the lifetime parameter (an agent owns its state and lives in its own task)",
            );
        }
        let name = match &*item.self_ty {
            Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
            _ => None,
        };
        let name = match name {
            Some(n) => n,
            None => {
                errors.push(item.self_ty.span(), "`#[agent]` needs a named struct type here");
                syn::Ident::new("Agent", Span::call_site())
            }
        };
        let self_ty = (*item.self_ty).clone();

        let mut handlers = Vec::new();
        let mut on_start = None;
        let mut on_stop = None;
        let mut on_down = None;
        let mut seen: HashMap<String, Span> = HashMap::new();
        let mut variants: HashMap<String, syn::Ident> = HashMap::new();

        for impl_item in &mut item.items {
            let ImplItem::Fn(f) = impl_item else { continue };
            let mut roles = Vec::new();
            let mut kept = Vec::new();
            let mut policy = None;
            let mut tool = None;
            for attr in f.attrs.drain(..) {
                match role_of(&attr) {
                    Some(Role::Handle) if matches!(attr.meta, syn::Meta::List(_)) => {
                        (policy, tool) = parse_handle_args(&attr, &mut errors);
                        roles.push((Role::Handle, attr.span()));
                    }
                    Some(role) => {
                        if !matches!(attr.meta, syn::Meta::Path(_)) {
                            errors.push(attr.span(), format!("`#[{}]` takes no arguments", role.attr()));
                        }
                        roles.push((role, attr.span()));
                    }
                    None => kept.push(attr),
                }
            }
            f.attrs = kept;
            let Some(&(role, role_span)) = roles.first() else {
                continue;
            };
            if let Some(&(other, span)) = roles.get(1) {
                errors.push(
                    span,
                    format!(
                        "a method can carry only one of `#[handle]`, `#[on_start]`, `#[on_stop]`; this one already has `#[{}]`",
                        role.attr()
                    ),
                );
                let _ = other;
            }
            match role {
                Role::Handle => {
                    let method = f.sig.ident.to_string();
                    if let Some(&(_, owner)) = RESERVED_HANDLER_NAMES.iter().find(|(n, _)| *n == method) {
                        errors.push(
                            f.sig.ident.span(),
                            format!(
                                "handler name `{method}` clashes with `{owner}`, which `ActorRef` already has; rename the handler"
                            ),
                        );
                    }
                    if seen.insert(method.clone(), f.sig.ident.span()).is_some() {
                        errors.push(
                            f.sig.ident.span(),
                            format!("two handlers named `{method}`: each handler needs its own name"),
                        );
                    }
                    let variant = syn::Ident::new(&camel_case(&method), f.sig.ident.span());
                    if let Some(prev) = variants.get(&variant.to_string()) {
                        if *prev != method.as_str() {
                            errors.push(
                                f.sig.ident.span(),
                                format!(
                                    "handlers `{prev}` and `{method}` both become the message `{variant}`; rename one of them"
                                ),
                            );
                        }
                    } else {
                        variants.insert(variant.to_string(), f.sig.ident.clone());
                    }
                    if let (Some(span), false) = (tool, item.generics.params.is_empty()) {
                        errors.push(
                            span,
                            "`#[handle(tool)]` is not supported on generic agents; serve a concrete agent type",
                        );
                    }
                    if let Some(mut h) = parse_handler(f, variant, &self_ty, &mut errors) {
                        h.policy = policy;
                        h.tool = tool;
                        handlers.push(h);
                    }
                }
                Role::OnStart | Role::OnStop | Role::OnDown => {
                    let slot = match role {
                        Role::OnStart => &mut on_start,
                        Role::OnStop => &mut on_stop,
                        _ => &mut on_down,
                    };
                    if slot.is_some() {
                        errors.push(
                            role_span,
                            format!("only one `#[{}]` method is allowed per agent", role.attr()),
                        );
                    }
                    if let Some(h) = parse_hook(f, role, &mut errors) {
                        *slot = Some(h);
                    }
                }
            }
        }

        let cleaned = item.clone();
        match errors.take() {
            Some(e) => (None, cleaned, Some(e)),
            None => (
                Some(AgentImpl {
                    item,
                    self_ty,
                    name,
                    handlers,
                    on_start,
                    on_stop,
                    on_down,
                }),
                cleaned,
                None,
            ),
        }
    }
}

fn check_common(f: &ImplItemFn, what: &str, errors: &mut Errors) {
    let g = &f.sig.generics;
    if !g.params.is_empty() || g.where_clause.is_some() {
        errors.push(
            g.span(),
            format!("`#[{what}]` methods cannot be generic; move the type parameter to the agent (`impl<T> MyAgent<T>`)"),
        );
    }
    if let Some(c) = &f.sig.constness {
        errors.push(c.span(), format!("`#[{what}]` methods cannot be `const`"));
    }
    if let Some(u) = &f.sig.unsafety {
        errors.push(u.span(), format!("`#[{what}]` methods cannot be `unsafe`"));
    }
    if let Some(v) = &f.sig.variadic {
        errors.push(v.span(), format!("`#[{what}]` methods cannot be variadic"));
    }
    match f.sig.inputs.first() {
        Some(FnArg::Receiver(r)) => {
            if r.reference.is_none() {
                errors.push(
                    r.span(),
                    format!(
                        "`#[{what}]` methods take `&self` or `&mut self`, not `self` by value: the agent keeps its state between messages"
                    ),
                );
            }
        }
        _ => errors.push(
            f.sig.ident.span(),
            format!("`#[{what}]` methods take `&self` or `&mut self` as their first parameter"),
        ),
    }
}

fn is_context(ty: &Type) -> bool {
    let Type::Reference(r) = ty else { return false };
    let Type::Path(p) = &*r.elem else { return false };
    p.path.segments.last().is_some_and(|s| s.ident == CONTEXT)
}

/// `T` when `ty` is `Reply<T>` (any path ending in `Reply` with one type argument).
fn reply_type(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != REPLY {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    });
    let t = types.next()?;
    types.next().is_none().then_some(t)
}

fn is_context_mut(ty: &Type) -> bool {
    matches!(ty, Type::Reference(r) if r.mutability.is_some()) && is_context(ty)
}

fn parse_handler(
    f: &ImplItemFn,
    variant: syn::Ident,
    self_ty: &Type,
    errors: &mut Errors,
) -> Option<Handler> {
    check_common(f, HANDLE, errors);
    let mut args = Vec::new();
    let mut params = Vec::new();
    let mut ok = true;
    let mut deferred: Option<Type> = None;
    for (i, input) in f.sig.inputs.iter().enumerate().skip(1) {
        let FnArg::Typed(pt) = input else { continue };
        if let Some(t) = reply_type(&pt.ty) {
            if deferred.is_some() {
                errors.push(pt.span(), "a handler takes at most one `Reply<T>` parameter");
                ok = false;
            }
            let mut t = t.clone();
            ReplaceSelf(self_ty).visit_type_mut(&mut t);
            deferred = Some(t);
            params.push(Param::Reply);
            continue;
        }
        if is_context(&pt.ty) {
            if !is_context_mut(&pt.ty) {
                errors.push(pt.ty.span(), "the context parameter must be `&mut Context<Self>`");
                ok = false;
            }
            if params.iter().any(|p| matches!(p, Param::Ctx)) {
                errors.push(
                    pt.span(),
                    "a handler takes at most one `&mut Context<Self>` parameter",
                );
                ok = false;
            }
            params.push(Param::Ctx);
            continue;
        }
        if let Some(span) = borrowed(&pt.ty) {
            errors.push(
                span,
                "handler arguments must be owned values: a message outlives the caller's borrows (take `String` instead of `&str`, `Vec<T>` instead of `&[T]`)",
            );
            ok = false;
        }
        if let Type::ImplTrait(it) = &*pt.ty {
            errors.push(
                it.span(),
                "handler arguments cannot be `impl Trait`; use a concrete type",
            );
            ok = false;
        }
        let name = match &*pt.pat {
            Pat::Ident(pi) if pi.subpat.is_none() => syn::Ident::new(&pi.ident.to_string(), pi.ident.span()),
            _ => syn::Ident::new(&format!("arg{i}"), pt.pat.span()),
        };
        let mut ty = (*pt.ty).clone();
        ReplaceSelf(self_ty).visit_type_mut(&mut ty);
        params.push(Param::Arg(args.len()));
        args.push(Arg { name, ty });
    }
    let ret = match (&f.sig.output, deferred.take()) {
        (ReturnType::Default, Some(t)) => t,
        (ReturnType::Type(_, ty), Some(t)) => {
            errors.push(
                ty.span(),
                "a handler that takes `Reply<T>` answers through it and returns nothing: remove the return type (callers get the `T`)",
            );
            ok = false;
            t
        }
        (ReturnType::Default, None) => syn::parse_quote!(()),
        (ReturnType::Type(_, ty), None) => {
            if let Type::ImplTrait(it) = &**ty {
                errors.push(
                    it.span(),
                    "handlers cannot return `impl Trait`; return a concrete type",
                );
                ok = false;
            }
            if let Some(span) = borrowed(ty) {
                errors.push(
                    span,
                    "handlers must return owned values: the reply travels to another task (return `String` instead of `&str`)",
                );
                ok = false;
            }
            let mut ty = (**ty).clone();
            ReplaceSelf(self_ty).visit_type_mut(&mut ty);
            ty
        }
    };
    let docs = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    ok.then_some(Handler {
        method: f.sig.ident.clone(),
        variant,
        is_async: f.sig.asyncness.is_some(),
        args,
        deferred: params.iter().any(|p| matches!(p, Param::Reply)),
        params,
        ret,
        docs,
        policy: None,
        tool: None,
    })
}

fn parse_hook(f: &ImplItemFn, role: Role, errors: &mut Errors) -> Option<Hook> {
    check_common(f, role.attr(), errors);
    let mut params = Vec::new();
    let mut ok = true;
    for input in f.sig.inputs.iter().skip(1) {
        let FnArg::Typed(pt) = input else { continue };
        if is_context_mut(&pt.ty) && !params.iter().any(|p| matches!(p, Param::Ctx)) {
            params.push(Param::Ctx);
        } else if role == Role::OnStop
            && matches!(&*pt.ty, Type::Reference(r) if r.mutability.is_none())
            && !params.iter().any(|p| matches!(p, Param::Reason))
        {
            params.push(Param::Reason);
        } else if role == Role::OnDown
            && matches!(&*pt.ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Down"))
            && !params.iter().any(|p| matches!(p, Param::Down))
        {
            params.push(Param::Down);
        } else {
            let expected = match role {
                Role::OnStop => {
                    "`#[on_stop]` takes `reason: &StopReason` and optionally `ctx: &mut Context<Self>`"
                }
                Role::OnDown => "`#[on_down]` takes `down: Down` and optionally `ctx: &mut Context<Self>`",
                _ => "`#[on_start]` takes only an optional `ctx: &mut Context<Self>`",
            };
            errors.push(pt.span(), expected);
            ok = false;
        }
    }
    if let ReturnType::Type(_, ty) = &f.sig.output {
        if !matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()) {
            errors.push(ty.span(), format!("`#[{}]` methods return nothing", role.attr()));
            ok = false;
        }
    }
    ok.then_some(Hook {
        method: f.sig.ident.clone(),
        is_async: f.sig.asyncness.is_some(),
        params,
    })
}

/// The span of a borrow inside a type (`&T` or a non-`'static` lifetime), if any.
fn borrowed(ty: &Type) -> Option<Span> {
    struct Find(Option<Span>);
    impl<'a> syn::visit::Visit<'a> for Find {
        fn visit_type_reference(&mut self, r: &'a syn::TypeReference) {
            let is_static = r.lifetime.as_ref().is_some_and(|l| l.ident == "static");
            if !is_static && self.0.is_none() {
                self.0 = Some(r.span());
            }
            syn::visit::visit_type_reference(self, r);
        }
        fn visit_lifetime(&mut self, l: &'a syn::Lifetime) {
            if l.ident != "static" && self.0.is_none() {
                self.0 = Some(l.span());
            }
        }
    }
    let mut f = Find(None);
    syn::visit::Visit::visit_type(&mut f, ty);
    f.0
}

/// Replaces `Self` in a type by the agent's type, so the type can be used outside the
/// impl block (in the generated enums and client).
struct ReplaceSelf<'a>(&'a Type);

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(p) = ty {
            if p.qself.is_none() && p.path.segments.first().is_some_and(|s| s.ident == "Self") {
                if p.path.segments.len() == 1 {
                    *ty = self.0.clone();
                    return;
                }
                let rest: Vec<_> = p.path.segments.iter().skip(1).cloned().collect();
                let agent = self.0.to_token_stream();
                let rest = rest.iter();
                *ty = syn::parse_quote!(<#agent> #(:: #rest)*);
                return;
            }
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

/// `add_one` -> `AddOne`, `r#type` -> `Type`.
pub(crate) fn camel_case(snake: &str) -> String {
    let snake = snake.strip_prefix("r#").unwrap_or(snake);
    let mut out = String::with_capacity(snake.len());
    let mut upper = true;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push_str("Underscore");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::camel_case;

    #[test]
    fn camel_case_joins_words() {
        assert_eq!(camel_case("add"), "Add");
        assert_eq!(camel_case("add_one"), "AddOne");
        assert_eq!(camel_case("r#type"), "Type");
        assert_eq!(camel_case("get_2x"), "Get2x");
    }
}
