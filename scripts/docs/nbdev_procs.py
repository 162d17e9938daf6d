"""An nbdev doc processor that renders the `show_doc` cells nbdev adds, without executing any notebook cell.

nbdev's own `exec_show_docs` runs every exported cell and every cell with an import in a kernel (03_ngram's would fit
n-gram models on the corpus). pyproject.toml skips it (`skip_procs = "exec_show_docs"`) and names this one instead
(`doc_procs = "scripts.docs.nbdev_procs:render_show_docs"`): it imports the library module of the notebook's
`#| default_exp` and calls `nbdev.showdoc.show_doc` on each object.
"""
import importlib, inspect, re, sys
from fastcore.nbio import read_nb
from nbdev.config import get_config
from nbdev.process import Processor
from nbdev.showdoc import show_doc
from nbdev.doclinks import NbdevLookup

_re_sd = re.compile(r'^show_doc\((.+)\)\s*$', re.M)
_re_exp = re.compile(r'^\s*#\|\s*default_exp\s+(\S+)', re.M)

class render_show_docs(Processor):
    def begin(self):
        self.mod = None
        path = getattr(self.nb, 'path_', None)
        if not path: return
        src = read_nb(path)   # default_exp cell is already removed from self.nb by rm_export
        m = next((m for c in src.cells if c.cell_type == 'code' for m in [_re_exp.search(c.source)] if m), None)
        if not m: return
        lib = get_config().lib_path.name
        self.mod = importlib.import_module(f'{lib}.{m.group(1)}')
        self.nl = NbdevLookup()

    def cell(self, cell):
        if self.mod is None or cell.cell_type != 'code': return
        m = _re_sd.search(cell.source)
        if not m: return
        try: obj = eval(m.group(1), vars(self.mod))
        except Exception as e:
            print(f'render_show_docs: cannot resolve {m.group(1)} in {self.mod.__name__}: {e}', file=sys.stderr); return
        md = show_doc(obj)._repr_markdown_()
        if '#LNone' in md:   # nbdev looks the line up under the qualified name and misses; ask inspect
            try: md = md.replace('#LNone', f'#L{inspect.getsourcelines(inspect.unwrap(obj))[1]}')
            except (TypeError, OSError): md = md.replace('#LNone', '')
        cell['outputs'] = [dict(output_type='display_data', metadata={}, data={'text/markdown': self.nl.linkify(md)})]
        cell['execution_count'] = None
