"""The Go-template subset behind ``--format``: fields, functions, pipelines, control, errors."""

from __future__ import annotations

import pytest

from minidocker import gotemplate
from minidocker.gotemplate import Strict, TemplateError, render

pytestmark = pytest.mark.nb09

VALUE = {"ID": "abc", "Names": ["a", "b"], "State": {"Status": "running", "Pid": 42,
                                                      "Running": True, "ExitCode": 0},
         "Config": {"Env": ["A=1"], "Labels": {}, "Entrypoint": None}}


@pytest.mark.parametrize(("template", "out"), [
    ("{{.ID}}", "abc"),
    ("{{ .State.Status }} {{.State.Pid}}", "running 42"),
    ("{{.}}", "map[Config:map[Entrypoint:<nil> Env:[A=1] Labels:map[]] ID:abc Names:[a b] "
              "State:map[ExitCode:0 Pid:42 Running:true Status:running]]"),
    ("{{.Names}}", "[a b]"),
    ("{{.Nope}}", "<no value>"),
    ("{{.Config.Entrypoint}}", "<nil>"),
    ("{{json .State}}", '{"Status":"running","Pid":42,"Running":true,"ExitCode":0}'),
    ("{{json .Config.Labels}}", "{}"),
    ("{{.ID | upper}}", "ABC"),
    ("{{upper .ID | lower}}", "abc"),
    ("{{len .Names}}", "2"),
    ("{{index .State \"Pid\"}}", "42"),
    ("{{join .Names \",\"}}", "a,b"),
    ("{{printf \"%-5s|%d\" .ID .State.Pid}}", "abc  |42"),
    ("{{range .Names}}[{{.}}]{{end}}", "[a][b]"),
    ("{{range .Config.Labels}}x{{else}}none{{end}}", "none"),
    ("{{with .State}}{{.Pid}}{{end}}", "42"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if eq .State.Status \"exited\"}}E{{else if .State.Running}}R{{else}}X{{end}}", "R"),
    ("{{if not .State.ExitCode}}ok{{end}}", "ok"),
    ("{{if and .State.Running .ID}}both{{end}}", "both"),
    ("a  {{- .ID -}}  b", "aabcb"),
    ("{{(index .Names 1)}}", "b"),
    ("tab\t{{.ID}}\n", "tab\tabc\n"),
])
def test_renders_like_go(template, out):
    assert render(template, VALUE) == out


@pytest.mark.parametrize(("template", "words"), [
    ("{{.ID", "unclosed action"),
    ("{{if .ID}}x", "unexpected EOF"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{.ID}}{{else}}", "unexpected {{else}}"),
    ("{{nosuchfunc .ID}}", 'function "nosuchfunc" not defined'),
    ("{{}}", "missing value for command"),
    ('{{"abc}}', "unclosed action"),
    ("{{.ID .Names}}", "can't give argument to non-function"),
    ("{{.ID |}}", "missing command"),
    ("{{$x}}", "undefined variable"),
    ("{{template \"x\"}}", "not supported"),
])
def test_malformed_templates_are_one_line_errors(template, words):
    with pytest.raises(TemplateError) as err:
        gotemplate.parse(template).render(VALUE)
    message = str(err.value)
    assert words in message and "\n" not in message and message.startswith("template: ")


def test_a_strict_value_refuses_unknown_fields():
    row = Strict({"ID": "abc"}, "*formatter.ContainerContext")
    assert render("{{.ID}}", row) == "abc"
    with pytest.raises(TemplateError, match="can't evaluate field Foo in type "
                                            r"\*formatter.ContainerContext"):
        render("{{.Foo}}", row)


def test_fields_of_a_string_are_an_error():
    with pytest.raises(TemplateError, match="can't evaluate field X in type string"):
        render("{{.ID.X}}", VALUE)


def test_truth_is_gos():
    for false in (False, 0, "", [], {}, None, gotemplate.MISSING):
        assert not gotemplate.truth(false)
    for true in (True, 1, "x", [0], {"a": 1}):
        assert gotemplate.truth(true)


def test_a_template_may_bring_its_own_functions() -> None:
    """As Go's Template.Funcs: added or replaced for one template, the defaults left alone."""
    own = gotemplate.parse('{{json .}} {{shout .A}}',
                           {"json": lambda v: "JSON", "shout": lambda s: s + "!"})
    assert own.render({"A": "hi"}) == "JSON hi!"
    assert render("{{json .}}", {"A": "hi"}) == '{"A":"hi"}'
    with pytest.raises(TemplateError, match='function "shout" not defined'):
        gotemplate.parse("{{shout .A}}")
