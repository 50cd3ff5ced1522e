"""``kpod teacher generate``: teacher rationales for questions, resumable at corpus scale."""

from __future__ import annotations

import argparse
import os
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "teacher",
        help="teacher rationales for questions (OpenAI-compatible server or local model)",
        description="Generate teacher rationales for questions with gold answers.",
    )
    sub = parser.add_subparsers(dest="teacher_command", metavar="COMMAND")
    gen = sub.add_parser(
        "generate",
        help="ask a teacher for rationales; append them to a JSON Lines file",
        description=(
            "Prompt a teacher with the paper's zero-shot CoT template ('Let's think step by "
            "step') for every question of QUESTIONS (any format kpod.data reads; ids and gold "
            "answers required) and append the rationales to OUT, keyed by (question id, sample "
            "index): run the same command again after an interruption and only the missing "
            "samples are generated. OUT is read by `kpod data prepare` and `kpod run` as it is; "
            "rationales whose answer disagrees with the gold one go to OUT.rejected.jsonl "
            "unless --keep-wrong. The API key is read from the environment ($OPENAI_API_KEY, "
            "see --api-key-env) and never printed or written. See docs/teacher.md."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    gen.add_argument("questions", metavar="QUESTIONS", help="questions with ids and gold answers")
    gen.add_argument("--out", required=True, metavar="OUT", help="output JSON Lines file")
    gen.add_argument(
        "--backend",
        default="openai",
        choices=["openai", "transformers"],
        help="an OpenAI-compatible HTTP server, or a local transformers model",
    )
    gen.add_argument(
        "--model",
        default=os.environ.get("KPOD_TEACHER_MODEL"),
        help="model name the server serves (default $KPOD_TEACHER_MODEL), or for the "
        "transformers backend a folder, Hub id or smollm2-135m",
    )
    gen.add_argument(
        "--base-url",
        default=None,
        help="server base URL, e.g. http://127.0.0.1:8000/v1 (default $OPENAI_BASE_URL, else "
        "the OpenAI API)",
    )
    gen.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="NAME",
        help="environment variable holding the API key (local servers need none)",
    )
    g = gen.add_argument_group("prompt and sampling")
    g.add_argument("--prompt-style", default="chat", choices=["chat", "completion"])
    g.add_argument(
        "--template",
        default=None,
        help="user message (chat) or whole prompt (completion) with {question} and {choices}; "
        "@FILE reads it from a file (default: the paper's zero-shot CoT prompt)",
    )
    g.add_argument(
        "--system",
        default=None,
        help="chat system message ('' for none; default asks for one step per line and a "
        "final 'Therefore, the answer is ...')",
    )
    g.add_argument("--samples", type=int, default=1, help="rationales per question")
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--max-tokens", type=int, default=512)
    g.add_argument("--seed", type=int, default=None, help="sampling seed (sample k uses seed+k)")
    g = gen.add_argument_group("input and output")
    g.add_argument("--format", default="auto", help="input format (see docs/data.md)")
    g.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="FIELD=NAME",
        help="map a schema field (id, question, answer, choices) to an input column",
    )
    g.add_argument(
        "--positional-ids",
        action="store_true",
        help="accept questions without ids (named <file stem>-<index>)",
    )
    g.add_argument("--limit", type=int, default=None, help="only the first N questions")
    g.add_argument(
        "--keep-wrong",
        action="store_true",
        help="keep rationales whose answer disagrees with the gold one, flagged",
    )
    g.add_argument(
        "--force",
        action="store_true",
        help="OUT was written with other settings: move it to OUT.bak and start over",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = gen.add_argument_group("HTTP backend")
    g.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    g.add_argument("--rpm", type=float, default=None, help="requests per minute limit")
    g.add_argument("--tpm", type=float, default=None, help="tokens per minute limit")
    g.add_argument("--max-retries", type=int, default=6, help="retries per request")
    g.add_argument(
        "--retry-delay", type=float, default=1.0, help="first backoff (doubles, jittered)"
    )
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    g = gen.add_argument_group("transformers backend")
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--device", default=None, help="e.g. cuda:0; default cuda if available")
    gen.set_defaults(func=_generate)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _generate(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from kpod.teacher import (
        OpenAIBackend,
        PromptTemplate,
        RetryPolicy,
        TeacherError,
        TeacherSettings,
        TransformersBackend,
        generate_rationales,
        read_questions,
    )

    template = args.template
    if template is not None and template.startswith("@"):
        template = Path(template[1:]).read_text(encoding="utf-8")
    columns = {}
    for spec in args.column:
        name, sep, col = spec.partition("=")
        if not sep:
            raise TeacherError(f"--column expects FIELD=NAME, got {spec!r}")
        columns[name] = col
    options: dict[str, Any] = {"columns": columns} if columns else {}
    questions = read_questions(
        args.questions,
        format=args.format,
        positional_ids=args.positional_ids,
        limit=args.limit,
        **options,
    )
    settings = TeacherSettings(
        model=args.model or "",
        prompt=PromptTemplate(style=args.prompt_style, template=template, system=args.system),
        temperature=args.temperature,
        top_p=args.top_p,
        max_tokens=args.max_tokens,
        seed=args.seed,
    )
    backend: OpenAIBackend | TransformersBackend
    if args.backend == "openai":
        backend = OpenAIBackend(args.base_url, api_key_env=args.api_key_env, timeout=args.timeout)
    else:
        backend = TransformersBackend(args.model, batch_size=args.batch_size, device=args.device)
    summary = generate_rationales(
        questions,
        args.out,
        backend,
        settings,
        samples=args.samples,
        keep_wrong=args.keep_wrong,
        force=args.force,
        concurrency=args.concurrency,
        requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm,
        retry=RetryPolicy(max_retries=args.max_retries, base_delay=args.retry_delay),
        show_progress=not args.no_progress,
    )
    print(summary.text())
    if summary.failed:
        print(
            f"kpod teacher generate: {summary.failed} sample(s) failed; "
            "run the same command again to retry them",
            file=sys.stderr,
        )
        return 1
    return 0
