#!/usr/bin/env python3
"""test_sandbox.py - shipgate-sandbox over real HTTP: every endpoint, reserved id, auth rule,
error shape, the request record and the body cap.

usage: test_sandbox.py SANDBOX_BINARY DATA_DIR
Starts the sandbox on a free loopback port, stops it at the end, prints "N passed, N failed".
"""
import http.client, json, sys, socket, time, base64, os, subprocess, tempfile, signal

proc = subprocess.Popen([sys.argv[1], '--listen', '127.0.0.1:0'], stdout=subprocess.PIPE, text=True)
line = proc.stdout.readline().strip()
assert line.startswith('listening on http://127.0.0.1:'), line
PORT = int(line.rsplit(':', 1)[1])
DATA = sys.argv[2].rstrip('/') + '/'
TMP = tempfile.mkdtemp(prefix='sbx-test-')
fails=0; passes=0
def check(cond, what):
    global fails, passes
    if cond: passes+=1
    else:
        fails+=1; print("FAIL:", what)
def req(method, path, headers=None, body=None):
    c=http.client.HTTPConnection('127.0.0.1',PORT,timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r=c.getresponse(); b=r.read(); c.close()
    return r.status, dict((k.lower(),v) for k,v in r.getheaders()), b
B={'Authorization':'Bearer sandbox-token'}
BK={'Authorization':'biteship_test.sandbox'}
def j(b):
    try: return json.loads(b)
    except Exception: return None
ex=lambda n: open(DATA+n,'rb').read()

# ---- examples byte-for-byte
s,h,b=req('GET','/boscod/v1/order/tracking/BOS123',B); check(s==200 and b==ex('boscod_tracking.json'),'boscod example')
check(h.get('content-type')=='application/json','boscod ctype')
s,h,b=req('GET','/bosonline/store/order/tracking?awb=IDE987651421',B); check(s==200 and b==ex('bosonline_tracking.json'),'bosonline example')
s,h,b=req('GET','/biteship/v1/orders/5dd599ebdefcd4158eb8470b',BK); check(s==200 and b==ex('biteship_order.json'),'biteship example')
s,h,b=req('GET','/fuuffy/v1/tracking/get/3550875',B); check(s==200 and b==ex('fuuffy_tracking.json'),'fuuffy order example')
check(h.get('x-ratelimit-limit')=='100','fuuffy ratelimit hdr')
s,h,b=req('GET','/fuuffy/v1/tracking/get?tracking_number=SF7444700508450',B); check(s==200 and b==ex('fuuffy_tracking.json'),'fuuffy tn example')
s,h,b=req('POST','/bosonline/order/d9cc7807-36c2-4eb1-b910-ece18a1bbb6e',dict(B,**{'Content-Type':'application/json'}),ex('bosonline_create_order_request.json'))
check(s==200 and b==ex('bosonline_create_order.json'),'create order example %d %r'%(s,b[:100]))
# ---- echo
s,h,b=req('GET','/biteship/v1/orders/abc123',BK); check(s==200 and j(b)['id']=='abc123' and b.replace(b'abc123',b'5dd599ebdefcd4158eb8470b')==ex('biteship_order.json'),'biteship echo')
s,h,b=req('GET','/fuuffy/v1/tracking/get/777',B); d=j(b)['data']; check(d['order_id']=='777' and d['tracking_number']=='SF7444700508450','fuuffy echo order')
s,h,b=req('GET','/fuuffy/v1/tracking/get?tracking_number=SF1',B); d=j(b)['data']; check(d['order_id']=='3550875' and d['tracking_number']=='SF1','fuuffy echo tn')
# ---- auth
for p in ['/boscod/v1/order/tracking/X1','/bosonline/store/order/tracking?awb=X1','/fuuffy/v1/tracking/get/1']:
    s,h,b=req('GET',p); check(s==401,'noauth '+p)
    s,h,b=req('GET',p,{'Authorization':'Bearer nope'}); check(s==401,'badauth '+p)
    s,h,b=req('GET',p,{'Authorization':'sandbox-token'}); check(s==401,'rawauth '+p)
    s,h,b=req('GET',p,{'Authorization':'bearer   sandbox-token'}); check(s==200,'case-insensitive scheme '+p)
s,h,b=req('POST','/bosonline/order/x',{'Content-Type':'application/json'},b'{}'); check(s==401,'create noauth')
s,h,b=req('GET','/biteship/v1/orders/x'); check(s==401 and j(b)['code']==40101001,'bite nokey')
s,h,b=req('GET','/biteship/v1/orders/x',{'Authorization':'Bearer biteship_test.sandbox'}); check(s==401 and j(b)['code']==40101003,'bite bearer')
s,h,b=req('GET','/biteship/v1/orders/x',{'Authorization':'biteship_live.sandbox'}); check(s==401 and j(b)['code']==40101002 and j(b)['success'] is False,'bite wrong')
# ---- reserved errors everywhere
targets={
 'boscod': lambda id: ('GET','/boscod/v1/order/tracking/'+id,B,None),
 'bosonline': lambda id: ('GET','/bosonline/store/order/tracking?awb='+id,B,None),
 'create': lambda id: ('POST','/bosonline/order/'+id,dict(B,**{'Content-Type':'application/json'}),ex('bosonline_create_order_request.json')),
 'biteship': lambda id: ('GET','/biteship/v1/orders/'+id,BK,None),
 'fuuffy': lambda id: ('GET','/fuuffy/v1/tracking/get/'+id,B,None),
 'fuuffy-tn': lambda id: ('GET','/fuuffy/v1/tracking/get?tracking_number='+id,B,None),
}
for name,t in targets.items():
    for code in [400,401,403,404,429,500,503,502,422]:
        s,h,b=req(*t('ERR-%d'%code)); body=j(b)
        check(s==code and body is not None,'%s ERR-%d -> %d'%(name,code,s))
        if name in('boscod','bosonline','create'): check(list(body.keys())==['message'],'%s shape'%name)
        if name=='biteship': check(body['success'] is False and isinstance(body['code'],int) and str(body['code']).startswith(str(code)),'bite shape %r'%body)
        if name.startswith('fuuffy'): check(set(body['error'].keys())>={'code','code_reason','message'},'fuuffy shape')
        if code==429: check(h.get('retry-after')=='2' and h.get('x-ratelimit-remaining')=='0' and 'x-ratelimit-reset' in h and h.get('x-ratelimit-limit')=='100','429 headers %s'%name)
        if code==400 and name.startswith('fuuffy'): check(body['error'].get('error_trace')==[{"field":"order_id","message":"order_id is required when tracking_number is not provided"}],'fuuffy 400 trace')
    s,h,b=req(*t('MALFORMED')); check(s==200 and j(b) is None and h['content-type']=='application/json' and len(b)>10,'%s MALFORMED'%name)
    s,h,b=req(*t('MALFORMED-HTML')); check(s==200 and j(b) is None and h['content-type']=='text/html','%s MALFORMED-HTML'%name)
    s,h,b=req(*t('WRONGTYPE')); check(s==200 and j(b) is not None,'%s WRONGTYPE'%name)
    s,h,b=req(*t('ECHO-HEADERS')); check(s==400 and j(b) is not None and (t('x')[2].get('Authorization','') in b.decode()) and 'rejected headers: Authorization: ' in b.decode(),'%s ECHO-HEADERS %r'%(name,b[:200]))
    t0=time.time(); s,h,b=req(*t('SLOW-300')); dt=time.time()-t0; check(s==200 and 0.29<dt<1.5,'%s SLOW %.3f'%(name,dt))
    s,h,b=req(*t('ERR-999')); check(s==400,'%s bad reserved ERR-999 %d'%(name,s))
    s,h,b=req(*t('SLOW-x')); check(s==400,'%s bad reserved'%name)
    s,h,b=req(*t('BIG-100001')); check(s==400,'%s BIG over cap'%name)
# wrongtype details
check(isinstance(j(req(*targets['boscod']('WRONGTYPE'))[2])['history'],str),'boscod wrongtype')
check(isinstance(j(req(*targets['bosonline']('WRONGTYPE'))[2])['data'],str),'bosonline wrongtype')
check(isinstance(j(req(*targets['biteship']('WRONGTYPE'))[2])['courier']['history'],str),'biteship wrongtype')
check(j(req(*targets['fuuffy']('WRONGTYPE'))[2])['data']['tracking_msg_list']==42,'fuuffy wrongtype')
check(isinstance(j(req(*targets['create']('WRONGTYPE'))[2])['data']['payment'],str),'create wrongtype')
# EMPTY / BIG
check(j(req(*targets['boscod']('EMPTY'))[2])['history']==[],'boscod empty')
check(j(req(*targets['bosonline']('EMPTY'))[2])['data']==[],'bosonline empty')
check(j(req(*targets['biteship']('EMPTY'))[2])['courier']['history']==[],'biteship empty')
check(j(req(*targets['fuuffy']('EMPTY'))[2])['data']['tracking_msg_list']==[],'fuuffy empty')
for n in [0,1,2,3,11,12,1000]:
    h1=j(req(*targets['boscod']('BIG-%d'%n))[2])['history']; check(len(h1)==n and len(set(e['update_on'] for e in h1))==n,'boscod big %d'%n)
    if n>=2: check(h1[0]['note']=='POD scan' and h1[-1]['note']=='Pick up scan' and all(h1[i]['update_on']>h1[i+1]['update_on'] for i in range(n-1)),'boscod big order')
    h2=j(req(*targets['bosonline']('BIG-%d'%n))[2])['data']; check(len(h2)==n and len(set(e['tm'] for e in h2))==n,'bosonline big')
    h3=j(req(*targets['biteship']('BIG-%d'%n))[2])['courier']['history']; check(len(h3)==n and len(set(e['updated_at'] for e in h3))==n,'bite big')
    h4=j(req(*targets['fuuffy']('BIG-%d'%n))[2])['data']['tracking_msg_list']; check(len(h4)==n and len(set(e['date'] for e in h4))==n,'fuuffy big')
h2=j(req(*targets['bosonline']('BIG-3'))[2])['data']; check(h2[0]['tm']=='1748829434' and h2[0]['time']=='08:57' and h2[0]['date']=='02 Jun','bosonline big time %r'%h2[0])
h3=j(req(*targets['biteship']('BIG-2'))[2])['courier']['history']; check(h3[0]['updated_at']=='2021-01-11T14:03:41+07:00','bite time %r'%h3[0])
h4=j(req(*targets['fuuffy']('BIG-1'))[2])['data']['tracking_msg_list']; check(h4[0]['date']=='2025-12-09 17:37:09','fuuffy time %r'%h4[0])
s,h,b=req(*targets['bosonline']('BIG-100000')); check(s==200 and len(j(b)['data'])==100000,'big 100000 %d bytes'%len(b))
# provider specials
d=j(req(*targets['biteship']('CAMELCASE'))[2]); check(d['status']=='droppingOff' and [e['status'] for e in d['courier']['history']][2]=='pickingUp' and d['id']=='CAMELCASE','camel')
d=j(req(*targets['biteship']('NULLS'))[2]); check(d['success'] is True and d['courier']['history'][0]['status'] is None and d['status'] is None and d['origin'] is None,'nulls')
d=j(req(*targets['fuuffy']('JSONSTRING'))[2]); check(isinstance(d['data'],str) and isinstance(json.loads(d['data'])['tracking_msg_list'],str) and json.loads(json.loads(d['data'])['tracking_msg_list'])[0]['code']=='50','jsonstring')
d=j(req(*targets['fuuffy']('JSONSTRING-LIST'))[2]); check(isinstance(d['data']['tracking_msg_list'],str),'jsonstring-list')
d=j(req(*targets['fuuffy']('ALLCODES'))[2]); check([e['code'] for e in d['data']['tracking_msg_list']][:3]==['50','54','30'],'allcodes')
s,h,b=req(*targets['fuuffy']('ERR-401-LEGACY')); check(s==401 and j(b)=={"error":{"code":"invalid_token","message":"The access token is invalid or has expired"}},'legacy')
s,h,b=req(*targets['fuuffy-tn']('ERR-ORDER-NOT-FOUND')); check(s==400 and j(b)['error']['error_code']=='ORDER_NOT_FOUND','order not found')
s,h,b=req('GET','/fuuffy/v1/tracking/get',B); check(s==400 and j(b)['error']['error_code']=='TRACKING_NUMBER_REQUIRED','tn required')
s,h,b=req('GET','/fuuffy/v1/tracking/get/?tracking_number=',B); check(s==400,'tn required 2')
s,h,b=req('GET','/bosonline/store/order/tracking',B); check(s==400 and j(b)=={'message':'awb is required'},'awb required')
s,h,b=req('GET','/boscod/v1/order/tracking/',B); check(s==400 and j(b)=={'message':'order_no is required'},'order_no required')
# ---- create order validation
CT=dict(B,**{'Content-Type':'application/json'})
good=json.loads(ex('bosonline_create_order_request.json'))
def bad(mut, what):
    g=json.loads(json.dumps(good)); mut(g)
    s,h,b=req('POST','/bosonline/order/F1',CT,json.dumps(g)); check(s==400 and j(b)['message'].startswith('Invalid input'),'create invalid: '+what+' %d %r'%(s,b))
bad(lambda g: g.pop('sender'),'no sender')
bad(lambda g: g.__setitem__('receiver',[]),'receiver array')
bad(lambda g: g.pop('items'),'no items')
bad(lambda g: g['items'].__setitem__('order_items',[]),'empty order_items')
bad(lambda g: g['items'].pop('order_items'),'no order_items')
bad(lambda g: g['items']['order_items'][0].__setitem__('item_qty',0),'qty 0')
bad(lambda g: g['items']['order_items'][0].__setitem__('item_sku',5),'sku int')
s,h,b=req('POST','/bosonline/order/F1',CT,b'{"sender":'); check(s==400 and 'not valid JSON' in j(b)['message'],'bad json')
s,h,b=req('POST','/bosonline/order/F1',CT,b'{"a":1,"a":2}'); check(s==400,'dup keys')
s,h,b=req('POST','/bosonline/order/F1',CT,b'\xff\xfe{'); check(s==400 and j(b) is not None,'binary json')
s,h,b=req('POST','/bosonline/order/F1',dict(B,**{'Content-Type':'text/plain'}),ex('bosonline_create_order_request.json')); check(s==400,'ctype')
s,h,b=req('GET','/bosonline/order/F1',CT); check(s==405 and h.get('allow')=='POST','405')
s,h,b=req('POST','/boscod/v1/order/tracking/X',B); check(s==405,'405 boscod')
# ---- unknown paths
for p in ['/','/nope','/boscod','/boscod/v2/x','/biteship/v1/orders/','/biteship/v1/orders','/fuuffy/v1/x','/__sandbox/nope','/bosonline/order/','*']:
    try:
        s,h,b=req('GET',p,B); check(s==404 and j(b) is not None,'404 %s -> %d %r'%(p,s,b[:80]))
    except Exception as e: check(False,'404 %s exc %s'%(p,e))
# ---- hostile ids
for p in ['/boscod/v1/order/tracking/..','/boscod/v1/order/tracking/.','/boscod/v1/order/tracking/a%00b','/boscod/v1/order/tracking/a%2Fb','/boscod/v1/order/tracking/a%0D%0AX-Evil:%201','/boscod/v1/order/tracking/'+'A'*65,'/boscod/v1/order/tracking/%ZZ','/boscod/v1/order/tracking/%','/boscod/v1/order/tracking/%E2%82','/biteship/v1/orders/%22%7D']:
    s,h,b=req('GET',p,dict(B,**BK) if 'biteship' in p else B); check(s==400 and j(b) is not None,'hostile %s -> %d'%(p,s))
s,h,b=req('GET','/boscod/v1/order/tracking/../../__sandbox/health',B); check(s==404,'dotdot route %d'%s)
s,h,b=req('GET','/bosonline/store/order/tracking?awb=a%00b',B); check(s==400,'awb nul')
s,h,b=req('GET','/bosonline/store/order/tracking?awb=IDE9%2B',B); check(s==400,'awb plus')
s,h,b=req('GET','/bosonline/store/order/tracking?foo=1&awb=IDE987651421&awb=x',B); check(s==200,'awb first of many')
# ---- fuuffy token
s,h,b=req('POST','/fuuffy/v1/auth/token',{'Content-Type':'application/json'},json.dumps({'grant_type':'client_credentials','client_id':'me','client_secret':'sandbox-token'}))
t=j(b)['data']; check(s==200 and t['token_type']=='Bearer' and t['expires_in']==3600 and t['access_token'],'token json (wrapped in data, as Fuuffy answers)')
s,h,b=req('GET','/fuuffy/v1/tracking/get/1',{'Authorization':'Bearer '+t['access_token']}); check(s==200,'issued token works')
s,h,b=req('GET','/fuuffy/v1/tracking/get/1',{'Authorization':'Bearer '+t['access_token'][:-1]+('0' if t['access_token'][-1]!='0' else '1')}); check(s==401,'tampered token')
s,h,b=req('GET','/boscod/v1/order/tracking/1',{'Authorization':'Bearer '+t['access_token']}); check(s==401,'fuuffy token not for boscod')
s,h,b=req('POST','/fuuffy/v1/auth/token',{'Content-Type':'application/x-www-form-urlencoded'},'grant_type=client_credentials&client_id=me&client_secret=sandbox-token'); check(s==200,'token form')
s,h,b=req('POST','/fuuffy/v1/auth/token',{'Content-Type':'application/x-www-form-urlencoded','Authorization':'Basic '+base64.b64encode(b'me:sandbox-token').decode()},'grant_type=client_credentials'); check(s==200,'token basic')
s,h,b=req('POST','/fuuffy/v1/auth/token',{'Content-Type':'application/x-www-form-urlencoded'},'grant_type=client_credentials&client_id=me&client_secret=bad'); check(s==401,'token bad secret')
s,h,b=req('POST','/fuuffy/v1/auth/token',{'Content-Type':'application/x-www-form-urlencoded'},'grant_type=password&client_id=me&client_secret=sandbox-token'); check(s==400 and j(b)['error']['error_trace'][0]['field']=='grant_type','token bad grant')
s,h,b=req('POST','/fuuffy/v1/auth/token',{'Content-Type':'application/x-www-form-urlencoded'},'grant_type=client_credentials&client_id=ERR-503&client_secret=sandbox-token'); check(s==503,'token ERR-503')
s,h,b=req('POST','/fuuffy/v1/auth/token',{'Content-Type':'application/x-www-form-urlencoded'},'grant_type=client_credentials&client_id=EXPIRES-1&client_secret=sandbox-token'); t=j(b)['data']; check(s==200 and t['expires_in']==1,'expires')
s,h,b=req('GET','/fuuffy/v1/tracking/get/1',{'Authorization':'Bearer '+t['access_token']}); check(s==200,'short token fresh')
time.sleep(2.1)
s,h,b=req('GET','/fuuffy/v1/tracking/get/1',{'Authorization':'Bearer '+t['access_token']}); check(s==401,'short token expired')
s,h,b=req('GET','/fuuffy/v1/auth/token'); check(s==405,'token GET')
# ---- record
req('POST','/__sandbox/reset')
req('GET','/boscod/v1/order/tracking/R%2041?x=%41',dict(B,**{'X-Custom':'v'}))
req('POST','/bosonline/order/F1',CT,b'{"hello":"w\xc3\xb6rld"}')
req('GET','/nowhere/at/all')
req('GET','/__sandbox/health')
s,h,b=req('GET','/__sandbox/requests'); rec=j(b)
check(len(rec)==3,'record count %d'%len(rec))
r0=rec[0]; check(r0['method']=='GET' and r0['target']=='/boscod/v1/order/tracking/R%2041?x=%41' and r0['path']=='/boscod/v1/order/tracking/R 41' and r0['query']=='x=%41' and r0['authorization']=='Bearer sandbox-token' and r0['status']==400 and ['X-Custom','v'] in r0['headers'],'record 0 %r'%r0)
r1=rec[1]; check(r1['body']=='{"hello":"wörld"}' and r1['content_type']=='application/json' and r1['status']==400 and r1['body_len']==len('{"hello":"wörld"}'.encode()),'record 1 %r'%r1)
check(rec[2]['path']=='/nowhere/at/all' and rec[2]['status']==404 and rec[0]['seq']<rec[1]['seq']<rec[2]['seq'],'record 2')
s,h,b=req('POST','/__sandbox/reset'); check(j(b)=={'cleared':3},'reset')
s,h,b=req('GET','/__sandbox/requests'); check(j(b)==[],'empty record')
s,h,b=req('GET','/__sandbox/stats'); check(s==200 and j(b) is not None,'stats')
# ---- body cap (curl reads the early answer while it sends)
import subprocess
open(TMP+'/big.bin','wb').write(b'x'*((1<<20)+1))
open(TMP+'/cap.bin','wb').write(b'x'*(1<<20))
def curl(*args):
    o=subprocess.run(['curl','-s','-o','/dev/null','-w','%{http_code}']+list(args),capture_output=True,text=True); return o.stdout
U='http://127.0.0.1:%d/bosonline/order/F1'%PORT
check(curl('-H','Authorization: Bearer sandbox-token','-H','Content-Type: application/json','--data-binary','@'+TMP+'/big.bin',U)=='413','413 content-length')
check(curl('-H','Authorization: Bearer sandbox-token','-H','Content-Type: application/json','-H','Transfer-Encoding: chunked','--data-binary','@'+TMP+'/big.bin',U)=='413','413 chunked')
check(curl('-H','Authorization: Bearer sandbox-token','-H','Content-Type: application/json','--data-binary','@'+TMP+'/cap.bin',U)=='400','at cap')
s,h,b=req('GET','/__sandbox/requests'); rec=j(b)
check([r['status'] for r in rec][-3:]==[413,413,400] and rec[-1]['body_len']==1<<20,'body cap recorded')
proc.send_signal(signal.SIGTERM)
check(proc.wait(timeout=10) == 0, 'clean exit on SIGTERM')
print("%d passed, %d failed" % (passes, fails))
sys.exit(1 if fails or not passes else 0)

