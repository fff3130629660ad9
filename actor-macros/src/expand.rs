//! Generate: the message and reply enums, the typed client and the `Agent` impl.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};

use crate::attr::AgentArgs;
use crate::model::{AgentImpl, Hook, Param};

pub(crate) fn generate(model: &AgentImpl, args: &AgentArgs) -> TokenStream {
    let krate = args.crate_path();
    let item = &model.item;
    let self_ty = &model.self_ty;
    let name = &model.name;
    let msg = format_ident!("{}Msg", name);
    let reply = format_ident!("{}Reply", name);
    let client = format_ident!("{}Client", name);
    let generics = &item.generics;
    let (impl_g, ty_g, where_c) = generics.split_for_impl();
    let name_text = name.to_string();

    // A hidden variant uses every type parameter, so generic agents whose handlers do not
    // mention one still compile.
    let type_params: Vec<_> = generics.type_params().map(|t| &t.ident).collect();
    let serde_skip = args.remote.then(|| quote!(#[serde(skip)]));
    let phantom = (!type_params.is_empty()).then(|| {
        quote! {
            #[doc(hidden)]
            #serde_skip
            __Phantom(::core::convert::Infallible, ::core::marker::PhantomData<fn() -> (#(#type_params,)*)>),
        }
    });
    let phantom_arm = (!type_params.is_empty()).then(|| quote!(#msg::__Phantom(never, _) => match never {},));
    let serde_attrs = args.remote.then(|| {
        let serde = quote!(#krate::__private::serde);
        let serde_path = format!(
            "{}::__private::serde",
            quote!(#krate).to_string().replace(' ', "")
        );
        quote! {
            #[derive(#serde::Serialize, #serde::Deserialize)]
            #[serde(crate = #serde_path)]
        }
    });

    // Handler names by message, for `Agent::handler_name` (traces, metrics) and
    // `RemoteAgent::handler` (access control).
    let handler_arms: Vec<TokenStream> = model
        .handlers
        .iter()
        .map(|h| {
            let variant = &h.variant;
            let method = h.method.to_string();
            quote! { #msg::#variant { .. } => #method, }
        })
        .collect();
    let phantom_handler =
        (!type_params.is_empty()).then(|| quote!(#msg::__Phantom(never, _) => match *never {},));

    // An agent without handlers has an empty message enum: nothing to match.
    let handler_name_body = if handler_arms.is_empty() && phantom_handler.is_none() {
        quote!(match *msg {})
    } else {
        quote!(match msg { #(#handler_arms)* #phantom_handler })
    };

    // `#[agent(remote)]`: the protocol other nodes compare before sending a message.
    let remote_impl = args.remote.then(|| {
        let description = protocol_description(model);
        let serde = quote!(#krate::__private::serde);
        let mut bounded = generics.clone();
        if !type_params.is_empty() {
            let clause = bounded.make_where_clause();
            for ty in [quote!(#msg #ty_g), quote!(#reply #ty_g)] {
                clause
                    .predicates
                    .push(syn::parse_quote!(#ty: #serde::Serialize + #serde::de::DeserializeOwned));
            }
        }
        let (_, _, remote_where) = bounded.split_for_impl();
        let policies = model.handlers.iter().filter_map(|h| {
            let method = h.method.to_string();
            h.policy.as_ref().map(|p| quote! { (#method, #p), })
        });
        quote! {
            #[automatically_derived]
            impl #impl_g #krate::RemoteAgent for #self_ty #remote_where {
                fn protocol() -> #krate::Protocol {
                    #krate::Protocol::new(
                        #name_text,
                        #description,
                        &[#(::core::any::type_name::<#type_params>()),*],
                    )
                }

                fn handler(msg: &Self::Msg) -> &'static str {
                    match msg {
                        #(#handler_arms)*
                        #phantom_handler
                    }
                }

                fn handler_policies() -> &'static [(&'static str, &'static str)] {
                    &[#(#policies)*]
                }

                fn ref_to_wire(
                    agent: &#krate::ActorRef<Self>,
                    scope: &(dyn ::core::any::Any + ::core::marker::Send + ::core::marker::Sync),
                ) -> ::core::result::Result<#krate::__private::WireRef, ::std::string::String> {
                    #krate::__private::node_ref_to_wire::<Self>(agent, scope)
                }

                fn ref_from_wire(
                    wire: #krate::__private::WireRef,
                    scope: &(dyn ::core::any::Any + ::core::marker::Send + ::core::marker::Sync),
                ) -> ::core::result::Result<#krate::ActorRef<Self>, ::std::string::String> {
                    #krate::__private::node_ref_from_wire::<Self>(wire, scope)
                }
            }
        }
    });

    let tool_impl = tool_impl(model, &krate);

    // Point at the user's type when an argument or return value cannot cross tasks. The
    // check is a struct (checked with the item signatures, before any body) emitted
    // ahead of everything else, so this is the first error the user reads, not the
    // chain through the runtime's internal types that follows it.
    let send_fields = model.handlers.iter().flat_map(|h| {
        h.args
            .iter()
            .map(|a| &a.ty)
            .chain(std::iter::once(&h.ret))
            .map(|ty| {
                quote_spanned! {syn::spanned::Spanned::span(ty)=>
                    MustBeSend<#ty>,
                }
            })
    });
    let send_checks = (!generics.params.is_empty())
        .then(TokenStream::new)
        .unwrap_or_else(|| {
            quote! {
                const _: () = {
                    #[allow(dead_code)]
                    struct MustBeSend<T: ::core::marker::Send + 'static>(::core::marker::PhantomData<T>);
                    #[allow(dead_code)]
                    struct HandlerTypesAreSend(#(#send_fields)*);
                };
            }
        });

    let mut msg_variants = Vec::new();
    let mut reply_variants = Vec::new();
    let mut arms = Vec::new();
    let mut methods = Vec::new();
    let mut msg_debug_arms = Vec::new();
    let mut reply_debug_arms = Vec::new();
    let mut debug_bounds = Vec::new();
    for h in &model.handlers {
        let variant = &h.variant;
        let method = &h.method;
        let ret = &h.ret;
        let docs = &h.docs;
        let arg_names: Vec<_> = h.args.iter().map(|a| &a.name).collect();
        let arg_tys: Vec<_> = h.args.iter().map(|a| &a.ty).collect();
        let field_docs: Vec<_> = h
            .args
            .iter()
            .map(|a| format!("Argument `{}` of [`{name_text}::{method}`].", a.name))
            .collect();
        let variant_doc = format!("The message for [`{name_text}::{method}`].");
        let reply_doc = format!("The reply of [`{name_text}::{method}`].");
        let method_doc = format!(
            "Request [`{name_text}::{method}`]: `.await` to call, `.cast()` to enqueue, `.timeout(d)` to bound."
        );

        let (pattern, construct) = if h.args.is_empty() {
            msg_variants.push(quote! { #[doc = #variant_doc] #variant, });
            (quote!(#msg::#variant), quote!(#msg::#variant))
        } else {
            msg_variants.push(quote! {
                #[doc = #variant_doc]
                #variant { #( #[doc = #field_docs] #arg_names: #arg_tys, )* },
            });
            (
                quote!(#msg::#variant { #(#arg_names),* }),
                quote!(#msg::#variant { #(#arg_names),* }),
            )
        };
        reply_variants.push(quote! { #[doc = #reply_doc] #variant(#ret), });

        // Debug, as `#[derive(Debug)]` would print it, for the types that have it.
        let variant_text = variant.to_string();
        let arg_texts: Vec<String> = h.args.iter().map(|a| a.name.to_string()).collect();
        msg_debug_arms.push(if h.args.is_empty() {
            quote! { #msg::#variant => __troupe_f.write_str(#variant_text), }
        } else {
            quote! {
                #msg::#variant { #(#arg_names),* } => __troupe_f
                    .debug_struct(#variant_text)
                    #(.field(#arg_texts, #arg_names))*
                    .finish(),
            }
        });
        reply_debug_arms.push(quote! {
            #reply::#variant(value) => __troupe_f.debug_tuple(#variant_text).field(value).finish(),
        });
        debug_bounds.extend(arg_tys.iter().map(|t| quote!(#t: ::core::fmt::Debug)));
        debug_bounds.push(quote!(#ret: ::core::fmt::Debug));

        let call_args = h.params.iter().map(|p| match p {
            Param::Arg(i) => {
                let n = &h.args[*i].name;
                quote!(#n)
            }
            Param::Ctx => quote!(ctx),
            Param::Reason => quote!(reason),
            Param::Down => quote!(down),
            Param::Reply => quote!(__troupe_reply),
        });
        // `self` keeps the expansion's own span (it must resolve like the generated
        // `handle`'s receiver, also when the impl comes from a `macro_rules!`); only the
        // method name points at the user's code.
        let receiver = quote!(self);
        let call = if h.is_async {
            quote_spanned!(method.span()=> #receiver.#method(#(#call_args),*).await)
        } else {
            quote_spanned!(method.span()=> #receiver.#method(#(#call_args),*))
        };
        if h.deferred {
            // The handler takes the reply slot and answers when it likes.
            arms.push(quote! {
                #pattern => {
                    let __troupe_reply = #krate::Reply::__from_ctx(ctx, #reply::#variant);
                    #call;
                    ::core::option::Option::None
                }
            });
        } else {
            arms.push(quote! { #pattern => ::core::option::Option::Some(#reply::#variant(#call)), });
        }

        methods.push(quote! {
            #(#docs)*
            #[doc = ""]
            #[doc = #method_doc]
            #[allow(unreachable_patterns)]
            pub fn #method(&self, #(#arg_names: #arg_tys),*) -> #krate::Request<#self_ty, #ret> {
                #krate::Request::new(&self.raw, #construct, |reply| match reply {
                    #reply::#variant(value) => ::core::option::Option::Some(value),
                    _ => ::core::option::Option::None,
                })
            }
        });
    }

    let on_start = model.on_start.as_ref().map(|h| {
        let call = hook_call(h);
        quote! {
            const EAGER_START: bool = true;

            fn on_start(&mut self, ctx: &mut #krate::Context<Self>) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send {
                async move {
                    let _ = &ctx;
                    #call;
                }
            }
        }
    });
    let on_stop = model.on_stop.as_ref().map(|h| {
        let call = hook_call(h);
        quote! {
            fn on_stop(&mut self, reason: &#krate::StopReason, ctx: &mut #krate::Context<Self>) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send {
                async move {
                    let _ = (&reason, &ctx);
                    #call;
                }
            }
        }
    });

    let on_down = model.on_down.as_ref().map(|h| {
        let call = hook_call(h);
        quote! {
            fn on_down(&mut self, down: #krate::Down, ctx: &mut #krate::Context<Self>) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send {
                async move {
                    let _ = &ctx;
                    #call;
                }
            }
        }
    });

    // `Debug` for the generated enums when every argument (or reply) type has it. The
    // bounds are written `for<'__troupe> T: Debug` so that a type without `Debug` makes
    // the impl not apply instead of being an error.
    let debug_impls = {
        let phantom_debug =
            (!type_params.is_empty()).then(|| quote!(_ => __troupe_f.write_str("__Phantom"),));
        let mut where_preds: Vec<TokenStream> = where_c
            .map(|w| w.predicates.iter().map(|p| quote!(#p)).collect())
            .unwrap_or_default();
        where_preds.extend(debug_bounds.iter().map(|b| quote!(for<'__troupe> #b)));
        quote! {
            #[automatically_derived]
            impl #impl_g ::core::fmt::Debug for #msg #ty_g where #(#where_preds),* {
                #[allow(unreachable_patterns)]
                fn fmt(&self, __troupe_f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    match self {
                        #(#msg_debug_arms)*
                        #phantom_debug
                    }
                }
            }

            #[automatically_derived]
            impl #impl_g ::core::fmt::Debug for #reply #ty_g where #(#where_preds),* {
                #[allow(unreachable_patterns)]
                fn fmt(&self, __troupe_f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    match self {
                        #(#reply_debug_arms)*
                        #phantom_debug
                    }
                }
            }
        }
    };

    let msg_doc =
        format!("The messages of [`{name_text}`], one per `#[handle]` method (generated by `#[agent]`).");
    let reply_doc =
        format!("The replies of [`{name_text}`], one per `#[handle]` method (generated by `#[agent]`).");
    let client_doc = format!(
        "The typed client of [`{name_text}`]: `ActorRef<{name_text}>` dereferences to it, so each handler is a method of the reference (generated by `#[agent]`)."
    );

    // The generated items carry `#[allow]`s because they are the user's items in the
    // user's crate: an unused handler must not make its message variant or client method
    // a dead-code warning, and their visibility follows `pub` whatever the struct's is.
    quote! {
        #send_checks

        #item

        #[doc = #msg_doc]
        #serde_attrs
        #[allow(dead_code, unreachable_pub, private_interfaces, private_bounds, clippy::enum_variant_names)]
        pub enum #msg #impl_g #where_c {
            #(#msg_variants)*
            #phantom
        }

        #[doc = #reply_doc]
        #serde_attrs
        #[allow(dead_code, unreachable_pub, private_interfaces, private_bounds, clippy::enum_variant_names)]
        pub enum #reply #impl_g #where_c {
            #(#reply_variants)*
            #phantom
        }

        #[doc = #client_doc]
        #[allow(dead_code, unreachable_pub, private_interfaces, private_bounds)]
        pub struct #client #impl_g #where_c {
            raw: #krate::__private::RawRef<#self_ty>,
        }

        const _: () = {
            #debug_impls

            #[automatically_derived]
            impl #impl_g ::core::clone::Clone for #client #ty_g #where_c {
                fn clone(&self) -> Self {
                    #client { raw: ::core::clone::Clone::clone(&self.raw) }
                }
            }

            #[automatically_derived]
            impl #impl_g ::core::fmt::Debug for #client #ty_g #where_c {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    ::core::fmt::Debug::fmt(&self.raw, f)
                }
            }

            #[automatically_derived]
            impl #impl_g #krate::__private::AgentClient<#self_ty> for #client #ty_g #where_c {
                fn troupe_from_raw(raw: #krate::__private::RawRef<#self_ty>) -> Self {
                    #client { raw }
                }
                fn troupe_raw(&self) -> &#krate::__private::RawRef<#self_ty> {
                    &self.raw
                }
            }

            #[automatically_derived]
            #[allow(dead_code, unreachable_pub, private_interfaces, private_bounds)]
            impl #impl_g #client #ty_g #where_c {
                #(#methods)*
            }

            #[automatically_derived]
            impl #impl_g #krate::Agent for #self_ty #where_c {
                type Msg = #msg #ty_g;
                type Reply = #reply #ty_g;
                type Client = #client #ty_g;

                fn options() -> #krate::Options {
                    #[allow(unused_imports)]
                    use #krate::__private::{ViaDefaultOptions as _, ViaStructOptions as _};
                    (&&#krate::__private::OptionsProbe::<Self>::new()).troupe_options()
                }

                #[allow(unreachable_patterns)]
                fn handler_name(msg: &Self::Msg) -> &'static str {
                    #handler_name_body
                }

                fn handle(&mut self, msg: Self::Msg, ctx: &mut #krate::Context<Self>) -> impl ::core::future::Future<Output = ::core::option::Option<Self::Reply>> + ::core::marker::Send {
                    async move {
                        let _ = &ctx;
                        match msg {
                            #(#arms)*
                            #phantom_arm
                        }
                    }
                }

                #on_start
                #on_stop
                #on_down
            }

            #remote_impl

            #tool_impl
        };
    }
}

/// `#[handle(tool)]`: an arguments struct per tool handler (its JSON Schema is the
/// tool's input schema) and `impl ToolAgent`, which decodes a call's JSON arguments,
/// calls the handler through the agent's reference and encodes its reply. Names
/// `::troupe::mcp`, which exists only with troupe's `mcp` feature.
fn tool_impl(model: &AgentImpl, krate: &syn::Path) -> Option<TokenStream> {
    let tools: Vec<_> = model.handlers.iter().filter(|h| h.tool.is_some()).collect();
    if tools.is_empty() {
        return None;
    }
    let self_ty = &model.self_ty;
    let mcp = quote!(#krate::mcp);
    let private = quote!(#krate::__private);
    let krate_text = quote!(#krate).to_string().replace(' ', "");
    let serde_path = format!("{krate_text}::__private::serde");
    let schemars_path = format!("{krate_text}::__private::schemars");
    let mut structs = Vec::new();
    let mut specs = Vec::new();
    let mut arms = Vec::new();
    for h in tools {
        let method = &h.method;
        let method_text = method.to_string();
        let args_ty = format_ident!("__Troupe{}{}ToolArgs", model.name, h.variant);
        let arg_names: Vec<_> = h.args.iter().map(|a| &a.name).collect();
        let arg_tys: Vec<_> = h.args.iter().map(|a| &a.ty).collect();
        let description = doc_text(&h.docs);
        let tool_span = h.tool.unwrap_or_else(proc_macro2::Span::call_site);
        structs.push(quote_spanned! {tool_span=>
            #[derive(#private::serde::Deserialize, #private::schemars::JsonSchema)]
            #[serde(crate = #serde_path)]
            #[schemars(crate = #schemars_path)]
            #[allow(non_camel_case_types, dead_code)]
            struct #args_ty {
                #( #arg_names: #arg_tys, )*
            }
        });
        specs.push(quote! { #mcp::ToolSpec::new::<#args_ty>(#method_text, #description) });
        // A return type that cannot become JSON is reported at the return type.
        let ret = &h.ret;
        let encode = quote_spanned! {syn::spanned::Spanned::span(ret)=>
            (&&#mcp::ToolReturn(&__troupe_value)).troupe_tool_value()
        };
        arms.push(quote! {
            #method_text => {
                let __troupe_args: #args_ty = match #mcp::tool_arguments(arguments) {
                    ::core::result::Result::Ok(args) => args,
                    ::core::result::Result::Err(e) => {
                        return ::std::boxed::Box::pin(async move { ::core::result::Result::Err(e) });
                    }
                };
                let __troupe_request = agent.#method(#(__troupe_args.#arg_names),*);
                ::std::boxed::Box::pin(async move {
                    let __troupe_value = __troupe_request.await?;
                    #[allow(unused_imports)]
                    use #mcp::{ViaResult as _, ViaSerialize as _};
                    #encode
                })
            }
        });
    }
    Some(quote! {
        #(#structs)*

        #[automatically_derived]
        impl #mcp::ToolAgent for #self_ty {
            fn tools() -> ::std::vec::Vec<#mcp::ToolSpec> {
                ::std::vec![#(#specs),*]
            }

            fn call_tool(
                agent: &#krate::ActorRef<Self>,
                name: &str,
                arguments: #private::serde_json::Value,
            ) -> #mcp::ToolFuture {
                match name {
                    #(#arms)*
                    other => #mcp::unknown_tool(other),
                }
            }
        }
    })
}

/// The text of a handler's doc comment: its lines, trimmed, joined by newlines.
fn doc_text(docs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = docs
        .iter()
        .filter_map(|attr| match &attr.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    lines.join("\n").trim().to_string()
}

/// The canonical text of an agent's handlers that its protocol fingerprint hashes:
/// `Name { method(arg: Type, ...) -> Ret; ... }`, in declaration order (the order of the
/// message enum's variants), types as written with whitespace normalised.
pub(crate) fn protocol_description(model: &AgentImpl) -> String {
    let handlers: Vec<String> = model
        .handlers
        .iter()
        .map(|h| {
            let args: Vec<String> = h
                .args
                .iter()
                .map(|a| format!("{}: {}", a.name, canonical_tokens(&a.ty)))
                .collect();
            format!(
                "{}({}) -> {}",
                h.method,
                args.join(", "),
                canonical_tokens(&h.ret)
            )
        })
        .collect();
    if handlers.is_empty() {
        format!("{} {{ }}", model.name)
    } else {
        format!("{} {{ {} }}", model.name, handlers.join("; "))
    }
}

/// Tokens as text with a space only between two identifier characters, and after commas.
fn canonical_tokens(tokens: &impl quote::ToTokens) -> String {
    let text = tokens.to_token_stream().to_string();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        if c.is_whitespace() {
            let before = out.chars().last();
            let after = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if before.is_some_and(word) && after.is_some_and(|&c| word(c)) && !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out.replace(',', ", ")
}

fn hook_call(h: &Hook) -> TokenStream {
    let method = &h.method;
    let receiver = quote!(self);
    let args = h.params.iter().map(|p| match p {
        Param::Ctx => quote!(ctx),
        Param::Reason => quote!(reason),
        Param::Down => quote!(down),
        Param::Arg(_) | Param::Reply => quote!(),
    });
    if h.is_async {
        quote_spanned!(method.span()=> #receiver.#method(#(#args),*).await)
    } else {
        quote_spanned!(method.span()=> #receiver.#method(#(#args),*))
    }
}
