// Renders an Ollama TEMPLATE the way Ollama does (text/template, missingkey=zero, its
// `json` function), over messages and tools shaped like Ollama's api.Message / api.Tool.
// Input on stdin: {"template": ..., "messages": [...], "tools": [...]}; output: the prompt.
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type ToolCallFunction struct {
	Name      string         `json:"name"`
	Arguments map[string]any `json:"arguments"`
}

type ToolCall struct {
	Function ToolCallFunction `json:"function"`
}

type Message struct {
	Role      string     `json:"role"`
	Content   string     `json:"content"`
	Thinking  string     `json:"thinking,omitempty"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	ToolName  string     `json:"tool_name,omitempty"`
}

type ToolFunction struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Parameters  map[string]any `json:"parameters"`
}

type Tool struct {
	Type     string       `json:"type"`
	Function ToolFunction `json:"function"`
}

type Input struct {
	Template string    `json:"template"`
	Messages []Message `json:"messages"`
	Tools    []Tool    `json:"tools"`
}

func main() {
	var in Input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	funcs := template.FuncMap{"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}}
	tmpl := template.Must(template.New("").Option("missingkey=zero").Funcs(funcs).Parse(in.Template))
	var tools any
	if len(in.Tools) > 0 {
		tools = in.Tools
	}
	data := map[string]any{"Messages": in.Messages, "Tools": tools, "Response": ""}
	if err := tmpl.Execute(os.Stdout, data); err != nil {
		panic(err)
	}
}
